# Snippet type: deliver. Directory redirects, and browser caching by revalidation.
if (resp.http.x-amz-meta-dir-redirect == "true") {
  set resp.status = 301;
  set resp.response = "Moved Permanently";
  set resp.http.Location = req.http.x-path "/";
} else if (resp.status == 200 || resp.status == 304) {
  set resp.http.Cache-Control = "no-cache";
}
if (req.http.x-path ~ "^/v/(switcher|versions)\.json$") {
  # Themes on other origins read the version lists.
  set resp.http.Access-Control-Allow-Origin = "*";
}
unset resp.http.x-amz-meta-surrogate-key;
unset resp.http.x-amz-meta-dir-redirect;
unset resp.http.x-amz-request-id;
unset resp.http.x-amz-id-2;
