//! The upload forms handed out with a new build (`Accept: application/vnd.ltdkeeper.v2+json`):
//! their shape, and that the store they point at accepts them inside the build's prefix and
//! refuses them outside it. The local store's forms go to keeper's own endpoint (which also
//! substitutes `${filename}`); S3 mode's go to a real S3-compatible server (s3s, in-process).

mod common;
mod storage_support;

use base64::Engine as _;
use common::api::{Api, Reply};
use common::{client, TestBackend};
use keeper::domain::Permissions;
use keeper::storage::ObjectStore;
use serde_json::{json, Value};
use storage_support::S3TestServer;

/// A form's fields as a map, from the build JSON.
fn fields(form: &Value) -> serde_json::Map<String, Value> {
    form["fields"].as_object().unwrap().clone()
}

/// POSTs `form` (with `key` replaced when given) with a `file` part, as `ltd upload` does:
/// the fields, a Content-Type when given, then the file.
fn post(
    form: &Value,
    key: Option<&str>,
    content_type: Option<&str>,
    filename: &str,
    body: &'static [u8],
) -> reqwest::blocking::Response {
    let mut multipart = reqwest::blocking::multipart::Form::new();
    for (name, value) in fields(form) {
        let value = match (name.as_str(), key) {
            ("key", Some(key)) => key.to_owned(),
            _ => value.as_str().unwrap().to_owned(),
        };
        multipart = multipart.text(name, value);
    }
    if let Some(content_type) = content_type {
        multipart = multipart.text("Content-Type", content_type.to_owned());
    }
    multipart = multipart.part(
        "file",
        reqwest::blocking::multipart::Part::bytes(body).file_name(filename.to_owned()),
    );
    client()
        .post(form["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .unwrap()
}

fn admin(api: &Api) -> String {
    api.user("admin", Permissions::ALL)
}

fn new_build(api: &Api, token: &str, directories: Value) -> Reply {
    let reply = api.post_v2(
        "/products/demo/builds/",
        token,
        json!({"git_refs": ["main"], "directories": directories}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    reply
}

fn policy_of(form: &Value) -> Value {
    let encoded = form["fields"]["policy"].as_str().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

/// The forms' shape: one pair per normalized directory, keyed as the spec says.
#[test]
fn build_response_carries_forms_for_every_directory() {
    let api = Api::start_with_storage(TestBackend::Sqlite, &[]);
    let token = admin(&api);
    api.product(&token, "demo");

    // Without the v2 media type: the v1 shape, no forms.
    let plain = api.post(
        "/products/demo/builds/",
        &token,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(plain.status, 201);
    assert!(plain.body.get("post_prefix_urls").is_none(), "{plain:?}");
    assert!(plain.body.get("post_dir_urls").is_none());

    let build = new_build(&api, &token, json!(["/", "a/b", "/c/", "a/b/", "c"])).body;
    let slug = build["slug"].as_str().unwrap();
    let surrogate_key = build["surrogate_key"].as_str().unwrap();
    let prefix_forms = build["post_prefix_urls"].as_object().unwrap();
    let dir_forms = build["post_dir_urls"].as_object().unwrap();
    let names: Vec<&String> = prefix_forms.keys().collect();
    assert_eq!(names, ["/", "a/b/", "c/"]);
    assert_eq!(dir_forms.keys().collect::<Vec<_>>(), names);

    let upload_url = api.url("/uploads/");
    for (name, dir) in [("/", ""), ("a/b/", "a/b/"), ("c/", "c/")] {
        let form = &prefix_forms[name];
        assert_eq!(form["url"], upload_url);
        let fields = self::fields(form);
        assert_eq!(
            fields["key"],
            format!("demo/builds/{slug}/{dir}${{filename}}")
        );
        assert_eq!(fields["Cache-Control"], "max-age=31536000");
        assert_eq!(fields["x-amz-meta-surrogate-key"], surrogate_key);
        assert_eq!(fields["success_action_status"], "204");
        let conditions = policy_of(form)["conditions"].as_array().unwrap().clone();
        assert!(conditions.contains(&json!(["starts-with", "$Content-Type", ""])));
        assert!(conditions.contains(&json!([
            "starts-with",
            "$key",
            format!("demo/builds/{slug}/{dir}")
        ])));

        let form = &dir_forms[name];
        let dir_fields = self::fields(form);
        let dir_key = format!("demo/builds/{slug}/{dir}");
        assert_eq!(dir_fields["key"], dir_key.trim_end_matches('/'));
        assert_eq!(dir_fields["x-amz-meta-dir-redirect"], "true");
        assert_eq!(dir_fields["success_action_status"], "204");
        // `ltd upload` sends no Content-Type with directory objects, and S3 refuses a form
        // whose policy names a field the request lacks: the form fixes it instead.
        assert_eq!(dir_fields["Content-Type"], "application/x-directory");
        let conditions = policy_of(form)["conditions"].as_array().unwrap().clone();
        assert!(conditions.contains(&json!({"Content-Type": "application/x-directory"})));
        assert!(conditions.contains(&json!(["content-length-range", 0, 0])));
    }

    // Long-lived by default (a day): the client uploads directory objects last.
    let expiration = policy_of(&prefix_forms["/"])["expiration"]
        .as_str()
        .unwrap()
        .to_owned();
    let expiration = chrono::DateTime::parse_from_rfc3339(&expiration).unwrap();
    assert!(expiration > chrono::Utc::now() + chrono::Duration::hours(23));

    // The default directory list is the root alone.
    let reply = api.post_v2(
        "/products/demo/builds/",
        &token,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(reply.status, 201);
    let names: Vec<&String> = reply.body["post_prefix_urls"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["/"]);

    // A directory that escapes is refused, and no build is made.
    let before = api.get("/products/demo/builds/").body["builds"]
        .as_array()
        .unwrap()
        .len();
    for bad in ["../x", "a//b", "a/../../b", ""] {
        let reply = api.post_v2(
            "/products/demo/builds/",
            &token,
            json!({"git_refs": ["main"], "directories": [bad]}),
        );
        assert_eq!(reply.status, 400, "{bad:?}: {reply:?}");
    }
    let after = api.get("/products/demo/builds/").body["builds"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}

#[test]
fn form_expiry_is_configurable() {
    let api = Api::start_with_storage(
        TestBackend::Sqlite,
        &[("KEEPER_UPLOAD_FORM_EXPIRY_SECS", "600")],
    );
    let token = admin(&api);
    api.product(&token, "demo");
    let build = new_build(&api, &token, json!(["/"])).body;
    let expiration = policy_of(&build["post_dir_urls"]["/"])["expiration"]
        .as_str()
        .unwrap()
        .to_owned();
    let expiration = chrono::DateTime::parse_from_rfc3339(&expiration).unwrap();
    let now = chrono::Utc::now();
    assert!(expiration > now + chrono::Duration::seconds(300));
    assert!(expiration <= now + chrono::Duration::seconds(600));
}

/// Local store: keeper's endpoint takes the forms, substitutes `${filename}`, stores the
/// metadata, and refuses anything outside the build's prefix.
#[test]
fn local_forms_upload_into_the_build_prefix_only() {
    let api = Api::start_with_storage(TestBackend::Sqlite, &[]);
    let token = admin(&api);
    api.product(&token, "demo");
    let build = new_build(&api, &token, json!(["/", "a/b/"])).body;
    let slug = build["slug"].as_str().unwrap().to_owned();
    let surrogate_key = build["surrogate_key"].as_str().unwrap().to_owned();
    let files = &build["post_prefix_urls"]["a/b/"];
    let dirs = &build["post_dir_urls"]["a/b/"];
    let store = api.local_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let head = |key: &str| runtime.block_on(store.head(key));

    let response = post(files, None, Some("text/html"), "page.html", b"<p>page</p>");
    assert_eq!(response.status(), 204, "{}", response.text().unwrap());
    let page = head(&format!("demo/builds/{slug}/a/b/page.html")).unwrap();
    assert_eq!(page.headers.content_type.as_deref(), Some("text/html"));
    assert_eq!(
        page.headers.cache_control.as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(page.headers.metadata["surrogate-key"], surrogate_key);

    // The directory object: empty, no Content-Type, as `ltd upload` sends it.
    let response = post(dirs, None, None, "", b"");
    assert_eq!(response.status(), 204, "{}", response.text().unwrap());
    let dir = head(&format!("demo/builds/{slug}/a/b")).unwrap();
    assert_eq!(dir.summary.size, 0);
    assert_eq!(dir.headers.metadata["dir-redirect"], "true");
    assert_eq!(
        dir.headers.content_type.as_deref(),
        Some("application/x-directory")
    );

    // The page is published at the build's URL.
    let published = build["published_url"].as_str().unwrap();
    let response = client()
        .get(format!("{published}/a/b/page.html"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "<p>page</p>");

    // Refused: another build, an edition, another product, the directory object's key through
    // the file form, a non-empty directory object, a key that escapes.
    let refused: Vec<RefusedCase> = vec![
        (
            "another build",
            files,
            Some("demo/builds/999/${filename}".into()),
            "x.html",
            b"x",
        ),
        (
            "an edition",
            files,
            Some("demo/v/__main/${filename}".into()),
            "x.html",
            b"x",
        ),
        (
            "another product",
            files,
            Some(format!("other/builds/{slug}/a/b/${{filename}}")),
            "x.html",
            b"x",
        ),
        (
            "the directory key",
            files,
            Some(format!("demo/builds/{slug}/a/b")),
            "x.html",
            b"x",
        ),
        (
            "a sibling directory",
            files,
            Some(format!("demo/builds/{slug}/a/bc/${{filename}}")),
            "x.html",
            b"x",
        ),
        (
            "another directory object",
            dirs,
            Some(format!("demo/builds/{slug}/a")),
            "",
            b"",
        ),
        ("a non-empty directory object", dirs, None, "", b"x"),
        ("a file name that escapes", files, None, "..", b"x"),
    ];
    let before = listing(&runtime, &store);
    for (case, form, key, filename, body) in refused {
        let response = post(form, key.as_deref(), Some("text/html"), filename, body);
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{case}: {status} {}",
            response.text().unwrap()
        );
    }
    assert_eq!(listing(&runtime, &store), before, "a refused form wrote");
}

/// A form replayed after its build was confirmed (and again after it was deprecated) is refused
/// 409 in the JSON error shape and writes nothing: a confirmed build is immutable.
fn forms_replayed_after_confirmation_write_nothing(backend: TestBackend) {
    let api = Api::start_with_storage(backend, &[]);
    let token = admin(&api);
    api.product(&token, "demo");
    let build = new_build(&api, &token, json!(["/"])).body;
    let slug = build["slug"].as_str().unwrap().to_owned();
    let files = &build["post_prefix_urls"]["/"];
    let dir = &build["post_dir_urls"]["/"];
    let store = api.local_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = format!("demo/builds/{slug}/index.html");
    let body_of = |key: &str| {
        runtime.block_on(async { store.get(key).await.unwrap().bytes().await.unwrap() })
    };

    let response = post(
        files,
        None,
        Some("text/html"),
        "index.html",
        b"<p>confirmed</p>",
    );
    assert_eq!(response.status(), 204, "{}", response.text().unwrap());
    let build_url = build["self_url"].as_str().unwrap();
    let path = build_url
        .split_once("/builds/")
        .map(|(_, id)| format!("/builds/{id}"))
        .unwrap();
    let confirmed = api.patch(&path, &token, json!({"uploaded": true}));
    assert_eq!(confirmed.status, 200, "{confirmed:?}");

    let before = listing(&runtime, &store);
    for (state, when) in [
        ("confirmed", "after confirmation"),
        ("deprecated", "after deprecation"),
    ] {
        if state == "deprecated" {
            let deprecated = api.delete(&path, &token);
            assert_eq!(deprecated.status, 200, "{deprecated:?}");
        }
        let before = listing(&runtime, &store);
        for (case, form, content_type, filename, bytes) in [
            (
                "an overwrite",
                files,
                Some("text/html"),
                "index.html",
                &b"<p>replayed</p>"[..],
            ),
            (
                "a new file",
                files,
                Some("text/html"),
                "new.html",
                &b"<p>new</p>"[..],
            ),
            // As `ltd upload` sends it: empty, no Content-Type.
            ("the directory object", dir, None, "", &b""[..]),
        ] {
            let response = post(form, None, content_type, filename, bytes);
            assert_eq!(response.status(), 409, "{case} {when}");
            let error: Value = response.json().unwrap();
            assert_eq!(error["status"], 409, "{error}");
            assert_eq!(error["error"], "conflict", "{error}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(state), "{case} {when}: {message}");
        }
        assert_eq!(
            listing(&runtime, &store),
            before,
            "a replayed form wrote {when}"
        );
        if state == "confirmed" {
            assert_eq!(&body_of(&page)[..], b"<p>confirmed</p>");
        }
    }
    assert!(!before.is_empty());
}

/// A new build never gets a prefix that already holds objects (objects that outlived their
/// rows, as after a database restored from an older backup): an automatic slug takes the next
/// free number, a requested one is refused.
fn a_new_build_never_gets_a_prefix_that_holds_objects(backend: TestBackend) {
    let api = Api::start_with_storage(backend, &[]);
    let token = admin(&api);
    api.product(&token, "demo");
    let store = api.local_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for key in ["demo/builds/1/index.html", "demo/builds/2"] {
        runtime
            .block_on(store.put(
                key,
                bytes::Bytes::from_static(b"from before"),
                &keeper::storage::ObjectHeaders::default(),
            ))
            .unwrap();
    }
    let before = listing(&runtime, &store);

    let build = new_build(&api, &token, json!(["/"])).body;
    assert_eq!(build["slug"], "3", "{build}");
    // The v1 request (no upload forms) follows the same rule.
    let v1 = api.post(
        "/products/demo/builds/",
        &token,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(v1.status, 201, "{v1:?}");
    assert_eq!(v1.body["slug"], "4", "{v1:?}");

    let refused = api.post(
        "/products/demo/builds/",
        &token,
        json!({"git_refs": ["main"], "slug": "1"}),
    );
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("demo/builds/1/"),
        "{refused:?}"
    );
    let listed = api.get_with("/products/demo/builds/", &token);
    assert_eq!(
        listed.body["builds"].as_array().unwrap().len(),
        2,
        "{listed:?}"
    );
    assert_eq!(
        listing(&runtime, &store),
        before,
        "registering builds wrote objects"
    );
}

on_both_backends!(
    forms_replayed_after_confirmation_write_nothing,
    a_new_build_never_gets_a_prefix_that_holds_objects,
);

/// What a refused upload sends: case, form, key override, file name, body.
type RefusedCase<'a> = (&'a str, &'a Value, Option<String>, &'a str, &'static [u8]);

fn listing(runtime: &tokio::runtime::Runtime, store: &dyn ObjectStore) -> Vec<String> {
    use futures::TryStreamExt;
    runtime
        .block_on(store.list("demo/").try_concat())
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect()
}

/// S3 mode: the forms point at the bucket and S3 checks them. s3s-fs does not substitute
/// `${filename}` (keeper's endpoint does, above), so keys are given in full here.
#[test]
fn s3_forms_upload_into_the_build_prefix_only() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s3 = runtime.block_on(S3TestServer::start());
    let endpoint = s3.endpoint();
    let api = Api::start_with_storage(
        TestBackend::Sqlite,
        &[
            ("KEEPER_STORAGE_BACKEND", "s3"),
            ("KEEPER_S3_BUCKET", storage_support::BUCKET),
            ("KEEPER_S3_REGION", storage_support::REGION),
            ("KEEPER_S3_ENDPOINT_URL", endpoint.as_str()),
            ("KEEPER_S3_PATH_STYLE", "true"),
            ("KEEPER_S3_ACCESS_KEY_ID", storage_support::ACCESS_KEY),
            ("KEEPER_S3_SECRET_ACCESS_KEY", storage_support::SECRET_KEY),
        ],
    );
    let store = runtime.block_on(s3.store(1000));
    let token = admin(&api);
    api.product(&token, "demo");
    let build = new_build(&api, &token, json!(["/", "empty/"])).body;
    let slug = build["slug"].as_str().unwrap().to_owned();
    let surrogate_key = build["surrogate_key"].as_str().unwrap().to_owned();
    let files = &build["post_prefix_urls"]["/"];
    assert_eq!(
        files["url"],
        format!("{endpoint}/{}", storage_support::BUCKET)
    );
    assert_eq!(
        fields(files)["key"],
        format!("demo/builds/{slug}/${{filename}}")
    );

    let key = format!("demo/builds/{slug}/index.html");
    let response = post(
        files,
        Some(&key),
        Some("text/html"),
        "index.html",
        b"<h1>hi</h1>",
    );
    assert_eq!(response.status(), 204, "{}", response.text().unwrap());
    let head = runtime.block_on(store.head(&key)).unwrap();
    assert_eq!(head.headers.content_type.as_deref(), Some("text/html"));
    assert_eq!(
        head.headers.cache_control.as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(head.headers.metadata["surrogate-key"], surrogate_key);

    // A directory object (of a directory with no file: s3s-fs keeps objects as plain files, so
    // `a` and `a/...` cannot both exist there; S3 itself has no such limit). s3s cannot parse
    // the empty file name `ltd upload` sends (`filename=""`), so the part is named here; the
    // form's key is exact, so the name plays no part.
    let dirs = &build["post_dir_urls"]["empty/"];
    let response = post(dirs, None, None, "empty", b"");
    assert_eq!(response.status(), 204, "{}", response.text().unwrap());
    let dir = runtime
        .block_on(store.head(&format!("demo/builds/{slug}/empty")))
        .unwrap();
    assert_eq!(dir.headers.metadata["dir-redirect"], "true");

    for (case, key) in [
        ("another build", "demo/builds/999/x.html".to_owned()),
        ("an edition", "demo/v/__main/x.html".to_owned()),
        ("another product", format!("other/builds/{slug}/x.html")),
    ] {
        let response = post(files, Some(&key), Some("text/html"), "x.html", b"x");
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{case}: {status} {}",
            response.text().unwrap()
        );
        assert!(
            runtime
                .block_on(store.head(&key))
                .unwrap_err()
                .is_not_found(),
            "{case}: {key} was written"
        );
    }
    drop(api);
    drop(s3);
}

/// A server with no object store cannot hand out forms: 503, and no build is made.
#[test]
fn no_store_no_forms() {
    let api = Api::start(TestBackend::Sqlite);
    let token = admin(&api);
    api.product(&token, "demo");
    let reply = api.post_v2(
        "/products/demo/builds/",
        &token,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(api.get("/products/demo/builds/").body["builds"], json!([]));
}
