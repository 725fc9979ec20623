# Snippet type: recv. Maps the published URL to the bucket key.
if (req.method != "GET" && req.method != "HEAD" && req.method != "FASTLYPURGE") {
  error 405 "Method Not Allowed";
}
set req.http.x-product = regsub(req.http.host, "^([a-z0-9-]+)\..*$", "\1");
if (req.http.x-product == req.http.host) {
  error 404 "Not Found";
}
set req.http.x-path = req.url.path;
if (req.http.x-path ~ "(^|/)\.\.?(/|$)" || req.http.x-path ~ "(?i)%(2f|2e|5c|00)" || req.http.x-path ~ "//") {
  error 404 "Not Found";
}
# The dashboards and version lists keeper renders (no edition or build takes their names).
if (req.http.x-path !~ "^/(v/(index\.html|switcher\.json|versions\.json)|builds/index\.html)$"
    && (req.http.x-path ~ "^/(v|builds)/[^/]+$" || req.http.x-path ~ "^/(v|builds)$")) {
  error 750 "Add a slash";
}
set req.http.x-key = req.http.x-path;
if (req.http.x-key ~ "/$") {
  set req.http.x-key = req.http.x-key "index.html";
}
if (req.http.x-key ~ "^/(v|builds)/") {
  set req.http.x-key = "/" req.http.x-product req.http.x-key;
} else {
  # The default edition: `__main`, or `main` for a product adopted from LTD Keeper 1.x, listed
  # in the edge dictionary `keeper_default_editions` (product slug -> edition slug).
  set req.http.x-key = "/" req.http.x-product "/v/" table.lookup(keeper_default_editions, req.http.x-product, "__main") req.http.x-key;
}
set req.url = "/docs-bucket" req.http.x-key;
unset req.http.Cookie;
unset req.http.Authorization;
