# labctl extras for images labctl built: packages and runcmd, run once per
# instance by /usr/local/lib/labctl/ready after the VM has an address.
