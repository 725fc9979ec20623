#!/usr/bin/env python3
"""Writes a documentation-like site of N files in nested directories (HTML, CSS, JS, images).

Usage: generate_site.py DIR N
"""

import os
import sys

root, count = sys.argv[1], int(sys.argv[2])
directories = ["", "_static", "_static/css", "_static/js", "_images", "api", "api/module",
               "api/module/sub", "guide", "guide/advanced", "reference", "reference/a/b/c"]
extensions = ["html", "html", "html", "css", "js", "png", "json", "txt"]
for index in range(count):
    directory = directories[index % len(directories)]
    extension = extensions[index % len(extensions)]
    name = "index.html" if index < len(directories) else f"page-{index}.{extension}"
    path = os.path.join(root, directory, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"<!-- {directory}/{name} -->\n" + "documentation " * (index % 300))
