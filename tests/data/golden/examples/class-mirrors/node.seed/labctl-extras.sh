# labctl extras for images labctl built: packages and runcmd, run once per
# instance by /usr/local/lib/labctl/ready after the VM has an address, with
# sh -eu: the first step that fails stops it, and `ready` keeps the step's
# name and the last lines it printed for labctl to report.
step() { printf '%s\n' "$*" > /run/labctl-step; }

step "mirrors: the lab's apt and registry mirrors"
sh -c 'set -e; mkdir -p /etc/containers/registries.conf.d /etc/docker; printf %b '"'"'[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "10.0.2.2:5000"
insecure = true
'"'"' > /etc/containers/registries.conf.d/60-labctl-mirror.conf; if [ "$(cat /etc/docker/daemon.json 2>/dev/null)" != '"'"'{"registry-mirrors": ["http://10.0.2.2:5000"], "insecure-registries": ["10.0.2.2:5000"]}'"'"' ]; then printf '"'"'%s\n'"'"' '"'"'{"registry-mirrors": ["http://10.0.2.2:5000"], "insecure-registries": ["10.0.2.2:5000"]}'"'"' > /etc/docker/daemon.json; if systemctl is-active --quiet docker.service; then systemctl restart docker.service; fi; fi; for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do if [ -f "$f" ]; then sed -i -E '"'"'s#https?://deb\.debian\.org/debian([[:space:]/]|$)#http://10.0.2.2:3142/deb.debian.org/debian\1#'"'"' "$f"; fi; done'

step 'packages: tree'
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q tree 
