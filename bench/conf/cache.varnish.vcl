# Varnish as the peer cache: the built-in VCL (it caches what the origin
# marks cacheable), malloc storage of 512 MiB, one thread pool; run.sh pins
# the whole process to the proxy core. Placeholders @NAME@ are filled in.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
