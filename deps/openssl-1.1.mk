# OpenSSL 1.1.1 for `make test-openssl-1.1`: Debian 11's libssl1.1 and
# libssl-dev from the bullseye-security suite, downloaded and extracted under
# build/ by deps/fetch-openssl-1.1.sh (never installed). Read with a plain
# grep. The security archive keeps only its newest build: when this one is
# replaced, `deps/fetch-openssl-1.1.sh pins` prints the lines for the new one.
OPENSSL11_SUITE = bullseye-security
OPENSSL11_VERSION = 1.1.1w-0+deb11u8
OPENSSL11_ARCH = amd64
OPENSSL11_LIBSSL_DEB = libssl1.1_1.1.1w-0+deb11u8_amd64.deb
OPENSSL11_LIBSSL_SHA256 = dcc68a543de6cb955a57077b66dcdb15f61d1e31e072f2c6cc4082c37da1b00d
OPENSSL11_LIBSSL_SIZE = 1565888
OPENSSL11_DEV_DEB = libssl-dev_1.1.1w-0+deb11u8_amd64.deb
OPENSSL11_DEV_SHA256 = d26a8e09f0fec2e67a4fde0cb40ca0dceae0eec4a33a5bceb2f6211b63d7f71b
OPENSSL11_DEV_SIZE = 1822428
