# Sourced by the scripts that need Debian packages on a fresh machine: `want` names what a
# missing command needs, `install_wanted` installs all of it in one apt-get run.
#   . scripts/packages.sh; want_build; want_testbed; install_wanted

wanted_packages=()

# want COMMAND PACKAGE: PACKAGE is installed unless COMMAND is on the PATH.
want() {
  command -v "$1" >/dev/null 2>&1 || wanted_packages+=("$2")
}

# What the test bed of several hosts (scripts/testbed.sh) uses: namespaces and links, the
# FORWARD rule, nsenter and flock, pgrep.
want_testbed() {
  want ip iproute2
  want iptables iptables
  { command -v nsenter && command -v flock; } >/dev/null 2>&1 || wanted_packages+=(util-linux)
  want pgrep procps
}

# What building coding-job needs: etcd-client compiles etcd's gRPC API at build time, with
# protoc and the well-known .proto files (descriptor.proto ...) of libprotobuf-dev.
want_build() {
  want protoc protobuf-compiler
  [ -e /usr/include/google/protobuf/descriptor.proto ] || wanted_packages+=(libprotobuf-dev)
  # The registry client verifies registries' TLS against the system's CA store.
  [ -e /etc/ssl/certs/ca-certificates.crt ] || wanted_packages+=(ca-certificates)
}

install_wanted() {
  if [ ${#wanted_packages[@]} -gt 0 ]; then
    echo "installing ${wanted_packages[*]} ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted_packages[@]}" >/dev/null
  fi
}
