# labctl extras for images labctl built: packages and runcmd, run once per
# instance by /usr/local/lib/labctl/ready after the VM has an address.

# Packages need a mirror the guest can reach; a lab without one still boots.
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 ; }; then
    echo "labctl-extras: could not install packages" > /dev/kmsg
fi
