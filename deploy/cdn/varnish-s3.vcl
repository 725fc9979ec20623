# Varnish (7.x, with the xkey vmod) directly in front of an S3-compatible bucket (path-style
# requests: MinIO, Garage, Ceph, or AWS with path-style access), for the subdomain layout
# `https://<product>.<root domain>`. It implements the URL rules of DESIGN.md section 4:
#   /v/<edition>/...   -> <bucket>/<product>/v/<edition>/...
#   /builds/<build>/... -> <bucket>/<product>/builds/<build>/...
#   /v/, /builds/      -> <bucket>/<product>/v/index.html, builds/index.html (the dashboards)
#   /v/switcher.json, /v/versions.json -> the version lists (CORS allowed)
#   anything else      -> <bucket>/<product>/v/__main/...   (the default edition)
#   a path ending in / -> .../index.html
#   /v, /builds, /v/<edition> and /builds/<build> -> redirect to the same path plus /
#   an empty object with x-amz-meta-dir-redirect: true -> redirect to the path plus /
# Objects are tagged with x-amz-meta-surrogate-key and purged by keeper with
#   PURGE / + xkey: <key> [<key> ...]
#
# Edit the backend address and the bucket name below (search for EDIT).

vcl 4.1;

import std;
import xkey;

# EDIT: the S3 endpoint.
backend s3 {
    .host = "127.0.0.1";
    .port = "9000";
    .connect_timeout = 5s;
    .first_byte_timeout = 60s;
}

acl purgers {
    "127.0.0.1";
    "::1";
}

# The default edition's slug: `__main`, except for products adopted from LTD Keeper 1.x, whose
# default edition stays `main` (at <product>/v/main/). `keeper adopt` prints their slugs; add a
# line per product below the marker.
sub keeper_default_edition {
    set req.http.x-default-edition = "__main";
    # EDIT: products whose default edition is `main`, one line each, e.g.
    #   if (req.http.x-product == "pipelines") { set req.http.x-default-edition = "main"; }
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
        return (synth(405, "Method Not Allowed"));
    }
    # EDIT: the bucket.
    set req.http.x-bucket = "docs-bucket";
    # The product is the first label of the host name.
    set req.http.x-product = regsub(req.http.host, "^([a-z0-9-]+)\..*$", "\1");
    if (req.http.x-product == req.http.host || req.http.x-product !~ "^[a-z0-9-]+$") {
        return (synth(404, "Not Found"));
    }
    set req.http.x-path = regsub(req.url, "\?.*$", "");
    # No traversal: refuse dot segments and encoded slashes, dots and backslashes.
    if (req.http.x-path ~ "(^|/)\.\.?(/|$)" || req.http.x-path ~ "(?i)%(2f|2e|5c|00)" || req.http.x-path ~ "//") {
        return (synth(404, "Not Found"));
    }
    # The dashboards and version lists keeper renders (no edition or build takes their names).
    if (req.http.x-path !~ "^/(v/(index\.html|switcher\.json|versions\.json)|builds/index\.html)$"
        && (req.http.x-path ~ "^/(v|builds)/[^/]+$" || req.http.x-path ~ "^/(v|builds)$")) {
        return (synth(750, req.http.x-path + "/"));
    }
    set req.http.x-key = req.http.x-path;
    if (req.http.x-key ~ "/$") {
        set req.http.x-key = req.http.x-key + "index.html";
    }
    if (req.http.x-key ~ "^/(v|builds)/") {
        set req.http.x-key = "/" + req.http.x-product + req.http.x-key;
    } else {
        call keeper_default_edition;
        set req.http.x-key = "/" + req.http.x-product + "/v/" + req.http.x-default-edition + req.http.x-key;
        unset req.http.x-default-edition;
    }
    set req.url = "/" + req.http.x-bucket + req.http.x-key;
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_hash {
    # The bucket URL names the page fully (host and product are in it).
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_fetch {
    # EDIT: the S3 endpoint's host name, if it checks it.
    set bereq.http.host = "127.0.0.1:9000";
    unset bereq.http.x-bucket;
}

sub vcl_backend_response {
    if (beresp.http.x-amz-meta-surrogate-key) {
        set beresp.http.xkey = beresp.http.x-amz-meta-surrogate-key;
    }
    # A bucket that is not listable answers 403 for a missing key.
    if (beresp.status == 403 || beresp.status == 404) {
        set beresp.status = 404;
        set beresp.ttl = 10s;
        set beresp.uncacheable = false;
        return (deliver);
    }
    if (beresp.status >= 500) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (!beresp.http.Cache-Control) {
        set beresp.ttl = 1d;
    }
    set beresp.grace = 1h;
    return (deliver);
}

sub vcl_deliver {
    if (resp.http.x-amz-meta-dir-redirect == "true") {
        set resp.status = 301;
        set resp.http.Location = req.http.x-path + "/";
    } else if (resp.status == 200 || resp.status == 304) {
        set resp.http.Cache-Control = "no-cache";
    }
    if (req.http.x-path ~ "^/v/(switcher|versions)\.json$") {
        # Themes on other origins read the version lists.
        set resp.http.Access-Control-Allow-Origin = "*";
    }
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.x-amz-meta-surrogate-key;
    unset resp.http.x-amz-meta-dir-redirect;
    unset resp.http.x-amz-request-id;
    unset resp.http.x-amz-id-2;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
    return (deliver);
}

sub vcl_synth {
    if (resp.status == 750) {
        set resp.http.Location = resp.reason;
        set resp.status = 301;
        set resp.reason = "Moved Permanently";
        return (deliver);
    }
}
