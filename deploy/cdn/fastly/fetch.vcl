# Snippet type: fetch. Tags the object with its surrogate key; short caching of misses.
if (beresp.http.x-amz-meta-surrogate-key) {
  set beresp.http.Surrogate-Key = beresp.http.x-amz-meta-surrogate-key;
}
if (beresp.status == 403 || beresp.status == 404) {
  set beresp.status = 404;
  set beresp.ttl = 10s;
  set beresp.cacheable = true;
}
if (beresp.status >= 500) {
  set beresp.ttl = 0s;
  set beresp.cacheable = false;
}
