# labctl extras for images labctl built: packages and runcmd, run once per
# instance by /usr/local/lib/labctl/ready after the VM has an address, with
# sh -eu: the first step that fails stops it, and `ready` keeps the step's
# name and the last lines it printed for labctl to report.
step() { printf '%s\n' "$*" > /run/labctl-step; }
