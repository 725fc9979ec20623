# Snippet type: error. The edition and build roots named without their slash.
if (obj.status == 750) {
  set obj.status = 301;
  set obj.response = "Moved Permanently";
  set obj.http.Location = req.http.x-path "/";
  synthetic {""};
  return (deliver);
}
