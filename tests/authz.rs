//! The authorization matrix: every route that needs credentials, against anonymous callers, each
//! single permission, an administrator, an expired token, a revoked API token and a token scoped
//! to another product. Every cell has its expected status, and a 401/403 writes nothing.

mod common;

use common::api::{Api, SECRET_KEY};
use common::TestBackend;
use keeper::auth::session::SessionKeys;
use keeper::domain::Permissions;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

/// What a route requires.
#[derive(Clone, Copy)]
enum Needs {
    /// These permissions on the product `demo` (tokens scoped elsewhere are refused).
    OnProduct(Permissions),
    /// These permissions, with a token not limited to some products.
    Unscoped(Permissions),
    /// Any user's own session (API tokens cannot manage tokens).
    Session,
    /// A session revoking its own token, or admin_user for someone else's.
    OwnTokenOrAdminUser,
    /// admin_org on the organization `acme` (`every: false`) or on every organization.
    OrgAdmin { every: bool },
}

struct Route {
    method: Method,
    /// Builds the request (creating what it targets, as the administrator): path and body.
    prepare: fn(&Fixture, usize) -> (String, Option<Value>),
    needs: Needs,
    success: u16,
}

struct Caller {
    name: &'static str,
    token: Option<String>,
    kind: CallerKind,
}

#[derive(Clone, Copy, PartialEq)]
enum CallerKind {
    Anonymous,
    Invalid,
    User(Permissions),
    ScopedElsewhere,
    /// A user with none of the five bits, granted admin_org on this organization only.
    OrgAdminOf(&'static str),
}

struct Fixture {
    api: Api,
    admin: String,
}

impl Fixture {
    fn build(&self) -> String {
        let reply = self.api.post(
            "/products/demo/builds/",
            &self.admin,
            json!({"git_refs": ["authz"]}),
        );
        assert_eq!(reply.status, 201);
        reply.body["self_url"].as_str().unwrap().to_owned()
    }

    fn edition(&self, n: usize) -> String {
        let reply = self.api.post(
            "/products/demo/editions/",
            &self.admin,
            json!({"slug": format!("e{n}"), "title": "t", "mode": "manual"}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["self_url"].as_str().unwrap().to_owned()
    }

    /// A build of `demo`, uploaded and confirmed.
    fn uploaded_build(&self) -> String {
        let build = self.build();
        let reply = self
            .api
            .patch(&build, &self.admin, json!({"uploaded": true}));
        assert_eq!(reply.status, 200, "{reply:?}");
        build
    }

    /// A FAILED operation on `demo`, to retry.
    fn failed_operation(&self) -> String {
        self.uploaded_build();
        let id = self
            .api
            .lines("SELECT CAST(MAX(id) AS TEXT) AS line FROM operations WHERE state = 'READY'")[0]
            .clone();
        self.api.execute(&format!(
            "UPDATE operations SET state = 'FAILED', message = 'authz' WHERE id = {id}"
        ));
        self.api.url(&format!("/operations/{id}/retry"))
    }

    /// A subscription of `demo`'s events, to delete. Those of earlier cells go first: a product
    /// has at most 20.
    fn webhook(&self, n: usize) -> String {
        self.api
            .execute("DELETE FROM webhooks WHERE url LIKE 'http://127.0.0.1:9/hook%'");
        let reply = self.api.post(
            "/webhooks/",
            &self.admin,
            json!({"url": format!("http://127.0.0.1:9/hook{n}"), "product": "demo"}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["self_url"].as_str().unwrap().to_owned()
    }

    /// A user granted admin_org on `acme`, whose grant a request takes back.
    fn acme_admin(&self, n: usize) -> String {
        let user = self.victim(n);
        let name = user.rsplit('/').next().unwrap().to_owned();
        let reply = self.api.call(
            Method::PUT,
            &format!("/orgs/acme/admins/{name}"),
            Some(&self.admin),
            None,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        format!("/orgs/acme/admins/{name}")
    }

    fn victim(&self, n: usize) -> String {
        let reply = self.api.post("/users/", &self.admin, json!({"username": format!("victim{n}"), "password": "victim password", "permissions": []}));
        assert_eq!(reply.status, 201);
        reply.body["self_url"].as_str().unwrap().to_owned()
    }

    /// A token of the administrator's, to revoke.
    fn admin_token(&self, n: usize) -> String {
        let reply = self
            .api
            .post("/tokens/", &self.admin, json!({"name": format!("t{n}")}));
        assert_eq!(reply.status, 201);
        reply.body["self_url"].as_str().unwrap().to_owned()
    }

    /// Every row that a request could change, one line each.
    fn fingerprint(&self) -> Vec<String> {
        self.api.lines(
            "SELECT 'p ' || id || ' ' || slug || ' ' || title || ' ' || doc_repo AS line FROM products
             UNION ALL SELECT 'b ' || id || ' ' || slug || ' ' || CAST(uploaded AS TEXT) || ' ' ||
                 COALESCE(CAST(date_ended AS TEXT), '-') AS line FROM builds
             UNION ALL SELECT 'e ' || id || ' ' || slug || ' ' || title || ' ' || tracking_mode || ' ' ||
                 COALESCE(CAST(date_ended AS TEXT), '-') AS line FROM editions
             UNION ALL SELECT 'u ' || id || ' ' || username || ' ' || permissions || ' ' || password_hash AS line FROM users
             UNION ALL SELECT 't ' || id || ' ' || name || ' ' || COALESCE(CAST(date_revoked AS TEXT), '-') AS line FROM api_tokens
             UNION ALL SELECT 'o ' || id || ' ' || kind || ' ' || state AS line FROM operations
             UNION ALL SELECT 'h ' || id || ' ' || reason AS line FROM edition_history
             UNION ALL SELECT 'g ' || id || ' ' || user_id || ' ' || COALESCE(CAST(organization_id AS TEXT), '*') AS line FROM organization_admins
             UNION ALL SELECT 'r ' || id || ' ' || slug || ' ' || title || ' ' || path_prefix AS line FROM organizations
             UNION ALL SELECT 'w ' || id || ' ' || url || ' ' || events AS line FROM webhooks
             UNION ALL SELECT 'd ' || id || ' ' || webhook_id || ' ' || state AS line FROM webhook_deliveries
             ORDER BY line",
        )
    }
}

fn routes() -> Vec<Route> {
    use Needs::*;
    vec![
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/products/".into(),
                    Some(json!({"slug": format!("new{n}"), "title": "t", "doc_repo": ""})),
                )
            },
            needs: Unscoped(Permissions::ADMIN_PRODUCT),
            success: 201,
        },
        Route {
            method: Method::PATCH,
            prepare: |_, n| {
                (
                    "/products/demo".into(),
                    Some(json!({"title": format!("title {n}")})),
                )
            },
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |_, _| {
                (
                    "/products/demo/builds/".into(),
                    Some(json!({"git_refs": ["main"]})),
                )
            },
            needs: OnProduct(Permissions::UPLOAD_BUILD),
            success: 201,
        },
        Route {
            method: Method::PATCH,
            prepare: |f, _| (f.build(), Some(json!({"uploaded": true}))),
            needs: OnProduct(Permissions::UPLOAD_BUILD),
            success: 200,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, _| (f.build(), None),
            needs: OnProduct(Permissions::DEPRECATE_BUILD),
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/products/demo/editions/".into(),
                    Some(json!({"slug": format!("n{n}"), "title": "t", "mode": "manual"})),
                )
            },
            needs: OnProduct(Permissions::ADMIN_EDITION),
            success: 201,
        },
        Route {
            method: Method::PATCH,
            prepare: |f, n| (f.edition(n), Some(json!({"title": "renamed"}))),
            needs: OnProduct(Permissions::ADMIN_EDITION),
            success: 200,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, n| (f.edition(n), None),
            needs: OnProduct(Permissions::ADMIN_EDITION),
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |f, n| {
                let edition = f.edition(n);
                let build = f.uploaded_build();
                (
                    format!("{edition}/rollback"),
                    Some(json!({ "build_url": build })),
                )
            },
            needs: OnProduct(Permissions::ADMIN_EDITION),
            success: 202,
        },
        Route {
            method: Method::POST,
            prepare: |f, _| (f.failed_operation(), None),
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |_, _| ("/products/demo/dashboard".into(), None),
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 202,
        },
        Route {
            method: Method::POST,
            prepare: |_, _| ("/dashboards".into(), None),
            needs: Unscoped(Permissions::ADMIN_PRODUCT),
            success: 202,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/orgs/".into(),
                    Some(json!({"slug": format!("org{n}"), "bucket_name": "bucket"})),
                )
            },
            needs: OrgAdmin { every: true },
            success: 201,
        },
        Route {
            method: Method::GET,
            prepare: |_, _| ("/orgs/acme".into(), None),
            needs: OrgAdmin { every: false },
            success: 200,
        },
        Route {
            method: Method::PATCH,
            prepare: |_, n| {
                (
                    "/orgs/acme".into(),
                    Some(json!({"title": format!("Acme {n}")})),
                )
            },
            needs: OrgAdmin { every: false },
            success: 200,
        },
        Route {
            method: Method::PUT,
            prepare: |f, n| {
                let user = f.victim(n);
                let name = user.rsplit('/').next().unwrap().to_owned();
                (format!("/orgs/acme/admins/{name}"), None)
            },
            needs: OrgAdmin { every: false },
            success: 200,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, n| (f.acme_admin(n), None),
            needs: OrgAdmin { every: false },
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/webhooks/".into(),
                    Some(json!({"url": format!("http://127.0.0.1:9/new{n}"), "product": "demo"})),
                )
            },
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 201,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/webhooks/".into(),
                    Some(
                        json!({"url": format!("http://127.0.0.1:9/org{n}"), "organization": "default"}),
                    ),
                )
            },
            needs: Unscoped(Permissions::ADMIN_PRODUCT),
            success: 201,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, n| (f.webhook(n), None),
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 200,
        },
        Route {
            method: Method::GET,
            prepare: |f, n| (format!("{}/deliveries", f.webhook(n)), None),
            needs: OnProduct(Permissions::ADMIN_PRODUCT),
            success: 200,
        },
        Route {
            method: Method::GET,
            prepare: |_, _| ("/users/".into(), None),
            needs: Unscoped(Permissions::ADMIN_USER),
            success: 200,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| {
                (
                    "/users/".into(),
                    Some(
                        json!({"username": format!("made{n}"), "password": "a long password", "permissions": ["upload_build"]}),
                    ),
                )
            },
            needs: Unscoped(Permissions::ADMIN_USER),
            success: 201,
        },
        Route {
            method: Method::GET,
            prepare: |f, n| (f.victim(n), None),
            needs: Unscoped(Permissions::ADMIN_USER),
            success: 200,
        },
        Route {
            method: Method::PATCH,
            prepare: |f, n| (f.victim(n), Some(json!({"permissions": ["admin_user"]}))),
            needs: Unscoped(Permissions::ADMIN_USER),
            success: 200,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, n| (f.victim(n), None),
            needs: Unscoped(Permissions::ADMIN_USER),
            success: 204,
        },
        Route {
            method: Method::POST,
            prepare: |_, n| ("/tokens/".into(), Some(json!({"name": format!("ci{n}")}))),
            needs: Session,
            success: 201,
        },
        Route {
            method: Method::GET,
            prepare: |_, _| ("/tokens/".into(), None),
            needs: Session,
            success: 200,
        },
        Route {
            method: Method::DELETE,
            prepare: |f, n| (f.admin_token(n), None),
            needs: OwnTokenOrAdminUser,
            success: 200,
        },
    ]
}

fn callers(fixture: &Fixture) -> Vec<Caller> {
    let api = &fixture.api;
    let mut callers = vec![
        Caller {
            name: "anonymous",
            token: None,
            kind: CallerKind::Anonymous,
        },
        Caller {
            name: "admin",
            token: Some(fixture.admin.clone()),
            kind: CallerKind::User(Permissions::ALL),
        },
    ];
    for (name, permission) in [
        ("admin_user", Permissions::ADMIN_USER),
        ("admin_product", Permissions::ADMIN_PRODUCT),
        ("admin_edition", Permissions::ADMIN_EDITION),
        ("upload_build", Permissions::UPLOAD_BUILD),
        ("deprecate_build", Permissions::DEPRECATE_BUILD),
    ] {
        let token = api.user(&format!("only-{}", name.replace('_', "-")), permission);
        callers.push(Caller {
            name,
            token: Some(token),
            kind: CallerKind::User(permission),
        });
    }
    // Organization admins of acme and of beta (who must not touch acme).
    for (name, org) in [("acme-admin", "acme"), ("beta-admin", "beta")] {
        let token = api.user(name, Permissions::NONE);
        let reply = api.call(
            Method::PUT,
            &format!("/orgs/{org}/admins/{name}"),
            Some(&fixture.admin),
            None,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        callers.push(Caller {
            name,
            token: Some(token),
            kind: CallerKind::OrgAdminOf(org),
        });
    }
    // An expired session of the administrator, signed with the server's own key.
    let keys = SessionKeys::new(&SecretString::from(SECRET_KEY), 3600);
    let expired = keys
        .issue(1, None, chrono::Utc::now().timestamp() - 7200)
        .unwrap();
    callers.push(Caller {
        name: "expired",
        token: Some(expired),
        kind: CallerKind::Invalid,
    });
    // A revoked API token of the administrator.
    let revoked = api.post("/tokens/", &fixture.admin, json!({"name": "revoked"}));
    assert_eq!(
        api.delete(revoked.body["self_url"].as_str().unwrap(), &fixture.admin)
            .status,
        200
    );
    callers.push(Caller {
        name: "revoked",
        token: Some(revoked.body["token"].as_str().unwrap().to_owned()),
        kind: CallerKind::Invalid,
    });
    // An API token with every permission, limited to the product `other`.
    let scoped = api.post(
        "/tokens/",
        &fixture.admin,
        json!({"name": "scoped", "products": ["other"]}),
    );
    assert_eq!(scoped.status, 201, "{scoped:?}");
    callers.push(Caller {
        name: "scoped-to-other",
        token: Some(scoped.body["token"].as_str().unwrap().to_owned()),
        kind: CallerKind::ScopedElsewhere,
    });
    callers
}

fn expected(route: &Route, caller: &Caller) -> u16 {
    let permissions = match caller.kind {
        CallerKind::Anonymous | CallerKind::Invalid => return 401,
        CallerKind::ScopedElsewhere => return 403,
        CallerKind::User(permissions) => permissions,
        CallerKind::OrgAdminOf(_) => Permissions::NONE,
    };
    let allowed = match route.needs {
        // The administrator holds admin_org on every organization; the single-bit users none.
        Needs::OrgAdmin { every } => match caller.kind {
            CallerKind::OrgAdminOf(org) => !every && org == "acme",
            _ => permissions == Permissions::ALL,
        },
        Needs::OnProduct(required) | Needs::Unscoped(required) => permissions.contains(required),
        Needs::Session => true,
        // The tokens to revoke belong to the administrator.
        Needs::OwnTokenOrAdminUser => {
            permissions == Permissions::ALL || permissions.contains(Permissions::ADMIN_USER)
        }
    };
    if allowed {
        route.success
    } else {
        403
    }
}

fn every_cell_has_its_expected_status(backend: TestBackend) {
    let key = keeper::crypto::EncryptionKeys::generate_key();
    let api = Api::start_with(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    api.product(&admin, "other");
    // The administrator holds admin_org on every organization (`keeper org grant admin --all`).
    api.execute(
        "INSERT INTO organization_admins (user_id, organization_id, date_created) \
         SELECT id, NULL, CURRENT_TIMESTAMP FROM users WHERE username = 'admin'",
    );
    for org in ["acme", "beta"] {
        let reply = api.post(
            "/orgs/",
            &admin,
            json!({"slug": org, "bucket_name": format!("{org}-docs")}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let fixture = Fixture { api, admin };
    let callers = callers(&fixture);
    let mut n = 0;
    let mut failures = Vec::new();
    let mut covered = Vec::new();
    for route in routes() {
        for caller in &callers {
            n += 1;
            let (path, body) = (route.prepare)(&fixture, n);
            covered.push((route.method.clone(), path.replace(&fixture.api.url(""), "")));
            let before = fixture.fingerprint();
            let reply = fixture.api.call(
                route.method.clone(),
                &path,
                caller.token.as_deref(),
                body.as_ref(),
            );
            let want = expected(&route, caller);
            let path = path.replace(&fixture.api.url(""), "");
            if reply.status != want {
                failures.push(format!(
                    "{} {path} as {}: {} (want {want}) {}",
                    route.method, caller.name, reply.status, reply.body
                ));
            }
            if matches!(reply.status, 401 | 403) {
                assert_eq!(reply.body["status"], reply.status, "JSON error shape");
                if fixture.fingerprint() != before {
                    failures.push(format!(
                        "{} {path} as {}: {} but the database changed",
                        route.method, caller.name, reply.status
                    ));
                }
            }
        }
    }
    assert!(n >= 16 * 10, "the matrix covers {n} cells");
    let uncovered = mutating_routes_outside(&fixture.api, &covered);
    assert!(
        uncovered.is_empty(),
        "mutating routes of /openapi.json missing from the matrix: {uncovered:?}"
    );
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The mutating routes (`POST`, `PUT`, `PATCH`, `DELETE`) of the OpenAPI document that no
/// request of the matrix reached: a new route must get its row.
fn mutating_routes_outside(api: &Api, covered: &[(Method, String)]) -> Vec<String> {
    let document = api.get("/openapi.json").body;
    let mut missing = Vec::new();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if method == Method::GET {
                continue;
            }
            let reached = covered.iter().any(|(m, path)| {
                *m == method && matches_template(template, path.split('?').next().unwrap_or(path))
            });
            if !reached {
                missing.push(format!("{method} {template}"));
            }
        }
    }
    missing
}

/// Whether `path` is an instance of `template` (`/editions/{id}/rollback`).
fn matches_template(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

on_both_backends!(every_cell_has_its_expected_status);
