-- wrk script: absolute-form requests to a forward proxy. wrk connects to
-- the proxy given on its command line and asks it for the origin's /1k.
-- @ORIGIN_PORT@ is filled in by bench/lib/forward.sh.
wrk.path = "http://127.0.0.1:@ORIGIN_PORT@/1k"
wrk.headers["Host"] = "127.0.0.1:@ORIGIN_PORT@"
