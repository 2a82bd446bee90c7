# labctl first boot for images labctl built (run by /usr/local/lib/labctl/firstboot
# with sh -eu). Rendered from the same model as user-data; every value is quoted.
hostname=db
user=lab
# (each process costs ~0.1 s under TCG, and a restored VM runs this while its
# student waits: builtins where a builtin does the same)
echo "$hostname" > /etc/hostname
echo "$hostname" > /proc/sys/kernel/hostname  # what hostname(1) does
printf '127.0.1.1 %s\n127.0.0.1 localhost\n' "$hostname" > /etc/hosts

# What a template's own first boot (or an earlier run) made is not made again:
# a restored VM runs this too. Membership of labctl-admin only ever comes from
# the usermod below, which locks the password at the same time.
group=no
member=no
admin_member=no
while IFS=: read -r name _ _ members; do
    if [ "$name" = labctl-admin ]; then
        group=yes
        case ",$members," in *",$user,"*) member=yes ;; esac
        case ",$members," in *",labctl,"*) admin_member=yes ;; esac
    fi
done < /etc/group
[ "$group" = yes ] || groupadd --system labctl-admin
# One key in ~USER/.ssh/authorized_keys. A file already there (the template's,
# or an earlier run's: same account, mode 0600) is rewritten in place, which
# keeps its owner and mode, without starting a process.
authorize() {
    if [ -f "$2/.ssh/authorized_keys" ] && [ ! -L "$2/.ssh/authorized_keys" ]; then
        printf '%s\n' "$3" > "$2/.ssh/authorized_keys"
    else
        install -d -m 0700 -o "$1" -g "$1" "$2/.ssh"
        printf '%s\n' "$3" | install -m 0600 -o "$1" -g "$1" /dev/stdin "$2/.ssh/authorized_keys"
    fi
}
home_of() {
    home=
    while IFS=: read -r name _ _ _ _ dir _; do
        if [ "$name" = "$1" ]; then home=$dir; fi
    done < /etc/passwd
}
home_of "$user"
if [ -z "$home" ]; then
    useradd --create-home --shell /bin/bash "$user"
    home_of "$user"
fi
[ "$member" = yes ] || usermod --lock -a -G labctl-admin,docker "$user"  # no password: keys only
authorize "$user" "$home" 'ssh-ed25519 AAAALOGINKEY labctl-LAB'

# labctl's own account (checks, readiness, deploys) with a key of its own that
# no hand-out holds: nothing done to the lab user's account stops labctl.
home_of labctl
if [ -z "$home" ]; then
    useradd --system --user-group --create-home --home-dir /var/lib/labctl --shell /bin/sh labctl
    home_of labctl
fi
[ "$admin_member" = yes ] || usermod --lock -a -G labctl-admin labctl
authorize labctl "$home" 'ssh-ed25519 AAAAADMINKEY labctl-admin-LAB'

# The host key labctl generated and pinned before this VM existed.
for key in /etc/ssh/ssh_host_*; do  # any other host key goes
    case "$key" in
        /etc/ssh/ssh_host_ed25519_key|/etc/ssh/ssh_host_ed25519_key.pub) ;;
        *) [ ! -e "$key" ] || rm -f "$key" ;;
    esac
done
echo 'ssh-ed25519 AAAAHOSTKEY root@VM' > /etc/ssh/ssh_host_ed25519_key.pub
umask 077  # a new file is made 0600; an existing one (the template's) is 0600
printf '%s' '-----BEGIN OPENSSH PRIVATE KEY-----
HOSTKEY
-----END OPENSSH PRIVATE KEY-----' > /etc/ssh/ssh_host_ed25519_key
umask 022

# Grow the root file system to the overlay's size (online, seconds), once per
# size: a VM restored from a template has the template's, which is its own.
read -r sectors < /sys/block/vda/size
resized=
[ ! -f /var/lib/labctl/resized ] || read -r resized < /var/lib/labctl/resized
if [ "$resized" != "$sectors" ]; then
    resize2fs /dev/vda >/dev/null 2>&1 || true
    [ -d /var/lib/labctl ] || mkdir -p /var/lib/labctl
    echo "$sectors" > /var/lib/labctl/resized
fi

mkdir -p "$(dirname /etc/motd)"
echo ZGF0YWJhc2UgaG9zdCBvZiB0aGUgbXVsdGkgbGFiCg== | base64 -d > /etc/motd
chmod 0644 /etc/motd
chown root:root /etc/motd

# On disk before sshd starts with these keys and labctl calls the VM ready: a
# VM powered off right after (a `down`-less host crash, `virsh destroy`) must
# not come back with empty host keys that sshd refuses to start with.
sync
