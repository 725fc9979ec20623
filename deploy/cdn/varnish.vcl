# Varnish (7.x, with the xkey vmod from varnish-modules) in front of keeper's built-in site
# server, for the subdomain layout: `Host: <product>.<root domain>` is passed through to keeper
# (started with KEEPER_SITES_ROOT_DOMAIN=<root domain>), which applies the URL rules of
# DESIGN.md section 4 itself (default edition at the root, /v/<edition>/, /builds/<build>/,
# index.html for directories, directory redirects).
#
# Every cached object is tagged with its Surrogate-Key; keeper purges with
#   PURGE / HTTP/1.1
#   xkey: <key> [<key> ...]          (or xkey-softpurge: ...)
# (keeper's VarnishPurger, KEEPER_CDN=varnish, KEEPER_VARNISH_URLS=http://varnish:6081).
#
# Edit the backend address; the tests replace the port.

vcl 4.1;

import std;
import xkey;

backend keeper {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 5s;
    .first_byte_timeout = 60s;
}

# Who may purge: keeper's API and workers.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        } else if (req.http.xkey) {
            set req.http.n-gone = xkey.purge(req.http.xkey);
        } else {
            return (synth(400, "Send the surrogate keys in an xkey header"));
        }
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Published sites are public and the same for everyone.
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_backend_response {
    # Tag the object with its surrogate keys (keeper's Surrogate-Key, or S3's metadata header).
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    } else if (beresp.http.x-amz-meta-surrogate-key) {
        set beresp.http.xkey = beresp.http.x-amz-meta-surrogate-key;
    }
    if (beresp.status == 404) {
        # Pages appear when a build is published; do not keep a miss for long.
        set beresp.ttl = 10s;
        set beresp.uncacheable = false;
    }
    if (beresp.status >= 500) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
    }
    # A purge makes changes visible at once; keep pages until then (the Cache-Control max-age
    # keeper's forms set, one year, otherwise a day).
    if (!beresp.http.Cache-Control && beresp.status == 200) {
        set beresp.ttl = 1d;
    }
    set beresp.grace = 1h;
    return (deliver);
}

sub vcl_deliver {
    # Browsers cannot be purged: let them revalidate with the ETag instead.
    if (resp.status == 200 || resp.status == 304) {
        set resp.http.Cache-Control = "no-cache";
    }
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
    return (deliver);
}
