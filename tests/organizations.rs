//! Organizations publish with their own bucket and CDN, on both backends: `keeper org create`
//! stores their credentials encrypted, a product created in an organization is rebuilt into the
//! organization's bucket and purged through its Fastly service, `keeper secrets rotate`
//! re-encrypts, and a secret no key decrypts fails the operation instead of being used.

mod common;
mod ops_support;
mod storage_support;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use keeper::api::uploads::{FormTarget, UploadForms};
use keeper::backends::{OrgBackends, OrgDefaults};
use keeper::crypto::EncryptionKeys;
use keeper::db::organizations::find_organization_settings_by_slug;
use keeper::ops::worker::Worker;
use keeper::ops::Services;
use keeper::org_admin::{
    rotate, run_org, OrgCommand, OrgSecrets, OrgSettingsArgs, Rotation, SecretChange,
};
use keeper::storage::s3::S3Store;
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore};
use ops_support::{Pipeline, FASTLY_SERVICE};
use secrecy::SecretString;
use serde_json::json;
use storage_support::{ACCESS_KEY, REGION, SECRET_KEY};

const ORG_BUCKET: &str = "acme-docs";
const ORG_SERVICE: &str = "AcmeFastlyService00001";
const ORG_FASTLY_KEY: &str = "acme-fastly-api-key";

/// `keeper org create acme ...` against the pipeline's S3 server and Fastly stand-in.
fn create_org(p: &Pipeline, keys: &EncryptionKeys) {
    p.s3.add_bucket(ORG_BUCKET);
    let settings = OrgSettingsArgs {
        title: Some("Acme".into()),
        layout: Some("subdomain".into()),
        root_domain: Some("acme.example".into()),
        bucket: Some(ORG_BUCKET.into()),
        s3_region: Some(REGION.into()),
        s3_endpoint_url: Some(p.s3.endpoint()),
        s3_path_style: Some(true),
        s3_access_key_id: Some(ACCESS_KEY.into()),
        cdn: Some("fastly".into()),
        fastly_service_id: Some(ORG_SERVICE.into()),
        ..OrgSettingsArgs::default()
    };
    let secrets = OrgSecrets {
        s3_secret_access_key: SecretChange::Set(SecretString::from(SECRET_KEY)),
        fastly_api_key: SecretChange::Set(SecretString::from(ORG_FASTLY_KEY)),
    };
    let mut conn = p.api.db.connect();
    run_org(
        OrgCommand::Create {
            slug: "acme".into(),
            settings,
        },
        &mut conn,
        Some(keys),
        &secrets,
    )
    .unwrap();
}

/// A worker like the pipeline's, whose organizations' secrets are read with `keys`.
fn worker_with_keys(p: &Pipeline, keys: Option<EncryptionKeys>) -> Worker {
    Worker::new(Services {
        organizations: Arc::new(OrgBackends::new(OrgDefaults {
            encryption_keys: keys,
            fastly: keeper::config::FastlyApi {
                url: p.fastly_server.uri().parse().unwrap(),
                soft_purge: false,
            },
            ..OrgDefaults::without_keys()
        })),
        ..p.services.clone()
    })
}

fn org_store(p: &Pipeline) -> S3Store {
    p.runtime
        .block_on(S3Store::connect(keeper::storage::s3::S3Settings {
            bucket: ORG_BUCKET.into(),
            ..p.s3.settings(1000)
        }))
}

fn keys_under(p: &Pipeline, store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    p.runtime.block_on(async {
        let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
            store.list(prefix).try_collect().await.unwrap();
        pages.into_iter().flatten().map(|o| o.key).collect()
    })
}

/// Registers a build of `product`, writes `pages` into the organization's bucket, confirms it.
fn upload_to_org(p: &Pipeline, store: &S3Store, product: &str, pages: &[(&str, &str)]) {
    let created = p.api.post(
        &format!("/products/{product}/builds/"),
        &p.admin,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let root = created.body["bucket_root_dir"].as_str().unwrap().to_owned();
    p.runtime.block_on(async {
        for (path, body) in pages {
            let headers = ObjectHeaders {
                content_type: Some("text/html".into()),
                metadata: Metadata::from([("surrogate-key".into(), "buildkey".into())]),
                ..ObjectHeaders::default()
            };
            store
                .put(
                    &format!("{root}/{path}"),
                    Bytes::from(body.to_string()),
                    &headers,
                )
                .await
                .unwrap();
        }
    });
    let confirmed = p.api.patch(
        created.body["self_url"].as_str().unwrap(),
        &p.admin,
        json!({"uploaded": true}),
    );
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
}

/// Paths and `Fastly-Key` headers of the purge requests the stand-in received.
fn purge_requests(p: &Pipeline) -> Vec<(String, String)> {
    p.runtime
        .block_on(p.fastly_server.received_requests())
        .unwrap_or_default()
        .into_iter()
        .map(|request| {
            let key = request
                .headers
                .get("fastly-key")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (request.url.path().to_owned(), key)
        })
        .collect()
}

fn a_product_publishes_with_its_organizations_bucket_and_cdn(backend: common::TestBackend) {
    let p = Pipeline::start(backend, 2);
    let keys = EncryptionKeys::parse(&EncryptionKeys::generate_key()).unwrap();
    create_org(&p, &keys);
    // Secrets are stored encrypted, never in plain text.
    let stored = p.api.lines(
        "SELECT s3_secret_access_key_encrypted || ' ' || fastly_api_key_encrypted AS line \
         FROM organizations WHERE slug = 'acme'",
    );
    assert!(!stored[0].contains(SECRET_KEY), "{stored:?}");
    assert!(!stored[0].contains(ORG_FASTLY_KEY), "{stored:?}");

    let created = p.api.post(
        "/products/",
        &p.admin,
        json!({"slug": "widget", "doc_repo": "https://example.org/widget.git",
               "title": "Widget", "organization": "acme"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["published_url"], "https://widget.acme.example");
    assert_eq!(
        p.api.get("/products/widget").body["published_url"],
        "https://widget.acme.example"
    );
    // The v1 API names products by slug alone: no second `widget` anywhere, no unknown org.
    let again = p.api.post(
        "/products/",
        &p.admin,
        json!({"slug": "widget", "doc_repo": "x", "title": "Widget again"}),
    );
    assert_eq!(again.status, 409, "{again:?}");
    let unknown = p.api.post(
        "/products/",
        &p.admin,
        json!({"slug": "gadget", "doc_repo": "x", "title": "Gadget", "organization": "nobody"}),
    );
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert_eq!(unknown.body["message"], "No organization named \"nobody\".");

    let store = org_store(&p);
    upload_to_org(
        &p,
        &store,
        "widget",
        &[("index.html", "<h1>widget</h1>"), ("a/b.html", "b")],
    );
    let worker = worker_with_keys(&p, Some(keys.clone()));
    assert_eq!(
        p.runtime.block_on(worker.drain()).unwrap(),
        Default::default()
    );
    let edition_key = p.edition_key("widget", "__main");
    let published = keys_under(&p, &store, "widget/v/__main/");
    assert_eq!(
        published,
        ["widget/v/__main/a/b.html", "widget/v/__main/index.html"]
    );
    let head = p
        .runtime
        .block_on(store.head("widget/v/__main/index.html"))
        .unwrap();
    assert_eq!(head.headers.metadata["surrogate-key"], edition_key);
    // Nothing of the product reached the process's (the default organization's) bucket.
    assert!(keys_under(&p, p.store.as_ref(), "widget/").is_empty());
    // The purge went to the organization's Fastly service with its key, and only there.
    let purges = purge_requests(&p);
    assert!(!purges.is_empty());
    for (path, key) in &purges {
        assert!(
            path.starts_with(&format!("/service/{ORG_SERVICE}/")),
            "{path}"
        );
        assert!(!path.contains(FASTLY_SERVICE), "{path}");
        assert_eq!(key, ORG_FASTLY_KEY);
    }
    assert_eq!(p.fastly.purges_of(&edition_key).len(), 1);
}

fn rotation_re_encrypts_and_an_undecryptable_secret_is_not_used(backend: common::TestBackend) {
    let p = Pipeline::start(backend, 2);
    let old = EncryptionKeys::generate_key();
    let new = EncryptionKeys::generate_key();
    let old_keys = EncryptionKeys::parse(&old).unwrap();
    create_org(&p, &old_keys);
    let created = p.api.post(
        "/products/",
        &p.admin,
        json!({"slug": "widget", "doc_repo": "x", "title": "Widget", "organization": "acme"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let secrets = || {
        p.api.lines(
            "SELECT s3_secret_access_key_encrypted || ' ' || fastly_api_key_encrypted AS line \
             FROM organizations WHERE slug = 'acme'",
        )
    };
    let before = secrets();

    // A rotation whose keys cannot read the secrets changes nothing.
    let mut conn = p.api.db.connect();
    let stranger = EncryptionKeys::parse(&EncryptionKeys::generate_key()).unwrap();
    let refused = rotate(&mut conn, &stranger).unwrap_err();
    assert!(
        format!("{refused:#}").contains("organization acme"),
        "{refused:#}"
    );
    assert_eq!(secrets(), before);

    // new;old re-encrypts both secrets with the new key; a second run has nothing to do.
    let rotated = EncryptionKeys::parse(&format!("{new};{old}")).unwrap();
    assert_eq!(
        rotate(&mut conn, &rotated).unwrap(),
        Rotation {
            reencrypted: 2,
            current: 0
        }
    );
    assert_ne!(secrets(), before);
    assert_eq!(
        rotate(&mut conn, &rotated).unwrap(),
        Rotation {
            reencrypted: 0,
            current: 2
        }
    );

    // Only the old key is left: the operation fails with what to do, and writes nothing.
    let store = org_store(&p);
    upload_to_org(&p, &store, "widget", &[("index.html", "one")]);
    let stale = worker_with_keys(&p, Some(old_keys));
    let counts = p.runtime.block_on(stale.drain()).unwrap();
    // Every operation of the product fails alike: the rebuild, the seal and the records.
    let messages = p
        .api
        .lines("SELECT message AS line FROM operations WHERE state = 'FAILED'");
    assert_eq!(counts.failed as usize, messages.len(), "{counts:?}");
    let message = p
        .api
        .lines("SELECT message AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') AND state = 'FAILED'");
    assert_eq!(message.len(), 1, "{message:?}");
    for message in &messages {
        assert!(message.contains("organization acme"), "{message:?}");
        assert!(message.contains("KEEPER_ENCRYPTION_KEYS"), "{message:?}");
    }
    assert!(keys_under(&p, &store, "widget/v/").is_empty());
    assert!(purge_requests(&p).is_empty());

    // With the new key alone, an operator's retry completes it.
    for id in p
        .api
        .lines("SELECT CAST(id AS TEXT) AS line FROM operations WHERE state = 'FAILED'")
    {
        let retried = p
            .api
            .post(&format!("/operations/{id}/retry"), &p.admin, json!({}));
        assert_eq!(retried.status, 200, "{retried:?}");
    }
    let current = worker_with_keys(&p, Some(EncryptionKeys::parse(&new).unwrap()));
    assert_eq!(
        p.runtime.block_on(current.drain()).unwrap(),
        Default::default()
    );
    assert_eq!(
        keys_under(&p, &store, "widget/v/__main/"),
        ["widget/v/__main/index.html"]
    );
}

fn upload_forms_point_at_the_organizations_bucket(backend: common::TestBackend) {
    let p = Pipeline::start(backend, 2);
    let keys = EncryptionKeys::parse(&EncryptionKeys::generate_key()).unwrap();
    create_org(&p, &keys);
    let mut conn = p.api.db.connect();
    let (_, settings) = find_organization_settings_by_slug(&mut conn, "acme").unwrap();
    let (_, default) = find_organization_settings_by_slug(&mut conn, "default").unwrap();
    let forms = |keys: Option<EncryptionKeys>| UploadForms {
        target: FormTarget::Keeper(keeper::storage::presign::SigningCredentials::keeper(
            SecretString::from("k".repeat(32)),
        )),
        store: p.store.clone(),
        organizations: Arc::new(OrgBackends::new(OrgDefaults {
            encryption_keys: keys,
            ..OrgDefaults::without_keys()
        })),
        expiry: std::time::Duration::from_secs(60),
        max_bytes: 1024,
    };
    let with_keys = forms(Some(keys));
    let target = p.runtime.block_on(with_keys.target_for(&settings)).unwrap();
    let FormTarget::S3(bucket) = target else {
        panic!("an organization's forms point at its bucket: {target:?}")
    };
    assert_eq!(bucket.bucket(), ORG_BUCKET);
    // The default organization keeps the process's target.
    let target = p.runtime.block_on(with_keys.target_for(&default)).unwrap();
    assert!(matches!(target, FormTarget::Keeper(_)), "{target:?}");
    // Without the keys the organization's secret cannot be used, and no form is signed.
    let err = p
        .runtime
        .block_on(forms(None).target_for(&settings))
        .unwrap_err();
    assert!(err.to_string().contains("KEEPER_ENCRYPTION_KEYS"), "{err}");
}

on_both_backends!(
    a_product_publishes_with_its_organizations_bucket_and_cdn,
    rotation_re_encrypts_and_an_undecryptable_secret_is_not_used,
    upload_forms_point_at_the_organizations_bucket,
);
