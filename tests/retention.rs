//! Retention (issue 17, item 2), on both backends: over a generated history of 200 builds and
//! 40 editions a policy keeps exactly what it says, its dry run names exactly what the real run
//! deletes, it runs as one scheduled operation per product per period, and a build that an
//! edition is being rebuilt from is never collected, however the two race.

mod common;
mod ops_support;
mod storage_support;

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, NaiveDateTime};
use common::TestBackend;
use keeper::config::RetentionConfig;
use keeper::domain::RetentionPolicy;
use keeper::ops::retention;
use ops_support::Pipeline;
use serde_json::json;

const BUILDS: i64 = 200;
const POLICY: RetentionPolicy = RetentionPolicy {
    enabled: true,
    keep_newest: 15,
    keep_days: 10,
    rollback_days: 60,
    edition_days: 30,
};

fn sql_time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The generated catalogue, as the generator made it: what the policy is checked against.
struct Generated {
    now: NaiveDateTime,
    /// Build number (1..=200) -> (database id, uploaded, refs, created).
    builds: HashMap<i64, (i64, bool, String, NaiveDateTime)>,
    /// Edition slug -> (database id, build number shown, auto-created draft).
    editions: HashMap<String, (i64, Option<i64>, bool)>,
    /// (build before, build after, when), as build numbers.
    history: Vec<(Option<i64>, i64, NaiveDateTime)>,
}

impl Generated {
    fn id(&self, number: i64) -> i64 {
        self.builds[&number].0
    }
}

/// 200 builds, one a day (build 200 is an hour old): even ones on `main`, odd ones cycling
/// through `feature-1` .. `feature-30`; every 25th never uploaded. 40 editions: `__main` on the
/// newest uploaded `main` build with a history of `main` builds since build 100, five releases
/// on old builds, 30 branch editions keeper created, each on its ref's newest uploaded build,
/// and four requested editions on refs without recent builds.
fn generate(p: &Pipeline) -> Generated {
    let api = &p.api;
    let product =
        api.lines("SELECT CAST(id AS TEXT) AS line FROM products WHERE slug = 'demo'")[0].clone();
    let now = chrono::Utc::now().naive_utc();
    let created = |number: i64| now - Duration::days(BUILDS - number) - Duration::hours(1);
    let refs = |number: i64| {
        if number % 2 == 0 {
            "main".to_owned()
        } else {
            format!("feature-{}", ((number - 1) / 2) % 30 + 1)
        }
    };
    let mut values = Vec::new();
    for number in 1..=BUILDS {
        values.push(format!(
            "({product}, 'g{number}', '[\"{}\"]', {}, '{}', '{:032x}')",
            refs(number),
            if number % 25 == 0 { "FALSE" } else { "TRUE" },
            sql_time(created(number)),
            0xb000 + number
        ));
    }
    api.execute(&format!(
        "INSERT INTO builds (product_id, slug, git_refs, uploaded, date_created, surrogate_key) \
         VALUES {}",
        values.join(", ")
    ));
    let ids: HashMap<String, i64> = api
        .lines("SELECT slug || ' ' || CAST(id AS TEXT) AS line FROM builds")
        .iter()
        .map(|line| {
            let (slug, id) = line.split_once(' ').unwrap();
            (slug.to_owned(), id.parse().unwrap())
        })
        .collect();
    let builds: HashMap<i64, (i64, bool, String, NaiveDateTime)> = (1..=BUILDS)
        .map(|number| {
            (
                number,
                (
                    ids[&format!("g{number}")],
                    number % 25 != 0,
                    refs(number),
                    created(number),
                ),
            )
        })
        .collect();
    let newest_uploaded = |git_ref: &str| {
        (1..=BUILDS)
            .rev()
            .find(|number| builds[number].1 && builds[number].2 == git_ref)
    };
    let mut editions_sql = Vec::new();
    let mut shown: Vec<(String, Option<i64>, bool)> = Vec::new();
    for (index, number) in [11i64, 31, 51, 71, 91].iter().enumerate() {
        shown.push((format!("v{}.0", index + 1), Some(*number), false));
        editions_sql.push((
            format!("v{}.0", index + 1),
            "manual",
            "NULL".to_owned(),
            "release",
            Some(*number),
            false,
        ));
    }
    for feature in 1..=30 {
        let git_ref = format!("feature-{feature}");
        let number = newest_uploaded(&git_ref);
        shown.push((git_ref.clone(), number, true));
        editions_sql.push((
            git_ref.clone(),
            "git_refs",
            format!("'[\"{git_ref}\"]'"),
            "draft",
            number,
            true,
        ));
    }
    for feature in 11..=14 {
        let slug = format!("requested-{feature}");
        let number = newest_uploaded(&format!("feature-{feature}"));
        shown.push((slug.clone(), number, false));
        editions_sql.push((
            slug,
            "git_refs",
            format!("'[\"feature-{feature}\"]'"),
            "draft",
            number,
            false,
        ));
    }
    let rows: Vec<String> = editions_sql
        .iter()
        .enumerate()
        .map(|(index, (slug, mode, tracked, kind, number, auto))| {
            format!(
                "({product}, '{slug}', '{slug}', '{mode}', {tracked}, '{kind}', {}, '{}', '{:032x}', {})",
                number.map_or("NULL".to_owned(), |n| builds[&n].0.to_string()),
                sql_time(now - Duration::days(300)),
                0xe000 + index,
                if *auto { "TRUE" } else { "FALSE" },
            )
        })
        .collect();
    api.execute(&format!(
        "INSERT INTO editions (product_id, slug, title, tracking_mode, tracked_refs, kind, \
         build_id, date_created, surrogate_key, auto_created) VALUES {}",
        rows.join(", ")
    ));
    let main_number = newest_uploaded("main");
    api.execute(&format!(
        "UPDATE editions SET build_id = {} WHERE slug = '__main'",
        builds[&main_number.unwrap()].0
    ));
    let edition_ids: HashMap<String, i64> = api
        .lines("SELECT slug || ' ' || CAST(id AS TEXT) AS line FROM editions")
        .iter()
        .map(|line| {
            let (slug, id) = line.split_once(' ').unwrap();
            (slug.to_owned(), id.parse().unwrap())
        })
        .collect();
    let mut editions: HashMap<String, (i64, Option<i64>, bool)> = shown
        .into_iter()
        .map(|(slug, number, auto)| (slug.clone(), (edition_ids[&slug], number, auto)))
        .collect();
    editions.insert("__main".into(), (edition_ids["__main"], main_number, false));
    assert_eq!(editions.len(), 40);
    // `__main`'s history: every uploaded main build since 100, each shown when it was made.
    let mains: Vec<i64> = (100..=BUILDS)
        .filter(|number| builds[number].1 && builds[number].2 == "main")
        .collect();
    let mut history = Vec::new();
    let mut rows = Vec::new();
    for pair in mains.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        history.push((Some(before), after, builds[&after].3));
        rows.push(format!(
            "({product}, {}, '__main', {}, {}, 'tracking', '{}')",
            edition_ids["__main"],
            builds[&before].0,
            builds[&after].0,
            sql_time(builds[&after].3)
        ));
    }
    api.execute(&format!(
        "INSERT INTO edition_history (product_id, edition_id, edition_slug, build_before, \
         build_after, reason, date_created) VALUES {}",
        rows.join(", ")
    ));
    Generated {
        now,
        builds,
        editions,
        history,
    }
}

/// What POLICY keeps, worked out from the generator's own data: the numbers of the builds to
/// delete, and the slugs of the editions to delete.
fn expected(generated: &Generated, also_in_use: &[i64]) -> (BTreeSet<i64>, BTreeSet<String>) {
    let days = |n: u32| generated.now - Duration::days(i64::from(n));
    let mut uploaded: Vec<i64> = (1..=BUILDS).filter(|n| generated.builds[n].1).collect();
    uploaded.sort_by_key(|n| std::cmp::Reverse(generated.builds[n].3));
    let newest: Vec<i64> = uploaded
        .into_iter()
        .take(POLICY.keep_newest as usize)
        .collect();
    let shown: Vec<i64> = generated.editions.values().filter_map(|e| e.1).collect();
    let in_window = |n: i64| {
        generated.history.iter().any(|(before, after, when)| {
            (*before == Some(n) || *after == n) && *when >= days(POLICY.rollback_days)
        })
    };
    let builds = (1..=BUILDS)
        .filter(|n| generated.builds[n].3 < days(POLICY.keep_days))
        .filter(|n| !newest.contains(n))
        .filter(|n| !shown.contains(n) && !also_in_use.contains(n))
        .filter(|n| !in_window(*n))
        .collect();
    let editions = generated
        .editions
        .iter()
        .filter(|(_, (_, _, auto))| *auto)
        .filter(|(slug, _)| {
            let newest_of_ref = (1..=BUILDS)
                .filter(|n| &generated.builds[n].2 == *slug)
                .map(|n| generated.builds[&n].3)
                .max()
                .unwrap();
            newest_of_ref < days(POLICY.edition_days)
        })
        .map(|(slug, _)| slug.clone())
        .collect();
    (builds, editions)
}

fn deprecated_numbers(p: &Pipeline) -> BTreeSet<i64> {
    p.api
        .lines("SELECT slug AS line FROM builds WHERE date_ended IS NOT NULL")
        .iter()
        .map(|slug| slug.trim_start_matches('g').parse().unwrap())
        .collect()
}

fn retention_keeps_exactly_what_the_policy_says(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    p.drain();
    let generated = generate(&p);
    // Off until turned on, and `keeper gc` says so.
    let off = retention::gc(
        &mut p.api.db.connect(),
        &RetentionConfig::default(),
        None,
        true,
        "http://keeper.test",
    )
    .unwrap();
    assert!(off.contains("retention is off for every product"), "{off}");
    assert_eq!(
        p.api.get("/products/demo").body["retention"]["enabled"],
        false
    );
    // The product's own policy, shown in its answer.
    let reply = p.api.patch(
        "/products/demo",
        &p.admin,
        json!({"retention": {"enabled": true, "keep_newest": 15, "keep_days": 10,
                             "rollback_days": 60, "edition_days": 30}}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["retention"]["source"], "product");
    assert_eq!(reply.body["retention"]["enabled"], true);
    assert_eq!(reply.body["retention"]["product_settings"]["keep_days"], 10);
    // A GET answer sent back whole keeps the settings; a changed shown value is refused.
    let whole = p.api.get("/products/demo").body;
    let same = p.api.patch("/products/demo", &p.admin, whole.clone());
    assert_eq!(same.status, 200, "{same:?}");
    assert_eq!(same.body["retention"], reply.body["retention"]);
    let mut edited = whole;
    edited["retention"]["keep_days"] = json!(7);
    let refused = p.api.patch("/products/demo", &p.admin, edited);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("read-only"));
    for (body, says) in [
        (json!({"retention": {"keep_newset": 3}}), "unknown field"),
        (
            json!({"retention": {"keep_days": 100_001}}),
            "at most 100000",
        ),
        (json!({"retention": {"keep_newest": -1}}), "invalid value"),
    ] {
        let refused = p.api.patch("/products/demo", &p.admin, body.clone());
        assert_eq!(refused.status, 400, "{body}: {refused:?}");
        assert!(
            refused.body["message"].as_str().unwrap().contains(says),
            "{refused:?}"
        );
    }
    // A rebuild queued from an old build: it is never collected under it.
    let v1 = generated.editions["v1.0"].0;
    let repoint = p.api.patch(
        &format!("/editions/{v1}"),
        &p.admin,
        json!({"build_url": p.api.url(&format!("/builds/{}", generated.id(5)))}),
    );
    assert_eq!(repoint.status, 200, "{repoint:?}");

    // The dry run names exactly what the policy says, with why.
    let (expected_builds, expected_editions) = expected(&generated, &[5]);
    assert!(expected_builds.len() > 50 && !expected_editions.is_empty());
    let config = RetentionConfig::default();
    let mut conn = p.api.db.connect();
    let dry = retention::gc(&mut conn, &config, Some("demo"), true, "http://keeper.test").unwrap();
    let named = |kind: &str| -> BTreeSet<String> {
        dry.lines()
            .filter_map(|line| line.trim().strip_prefix(&format!("would delete {kind} ")))
            .map(|rest| rest.split(' ').next().unwrap().to_owned())
            .collect()
    };
    let dry_builds: BTreeSet<i64> = named("build")
        .iter()
        .map(|slug| slug.trim_start_matches('g').parse().unwrap())
        .collect();
    assert_eq!(dry_builds, expected_builds, "{dry}");
    assert_eq!(named("edition"), expected_editions, "{dry}");
    assert!(
        dry.contains("never uploaded") && dry.contains("rollback window"),
        "{dry}"
    );
    assert!(
        deprecated_numbers(&p).is_empty(),
        "a dry run deleted something"
    );

    // Scheduled: one operation per product per period, however often workers look.
    let now = keeper::db::models::now();
    assert_eq!(retention::schedule(&mut conn, &config, now).unwrap(), 1);
    assert_eq!(retention::schedule(&mut conn, &config, now).unwrap(), 0);
    p.drain();
    assert_eq!(
        retention::schedule(&mut conn, &config, now).unwrap(),
        0,
        "a run within the period is enough"
    );
    let message = p
        .api
        .lines("SELECT message AS line FROM operations WHERE kind = 'retention' AND state = 'OK'");
    assert_eq!(message.len(), 1);
    assert!(
        message[0].starts_with(&format!(
            "Deleted {} editions and {} builds",
            expected_editions.len(),
            expected_builds.len()
        )),
        "{}",
        message[0]
    );

    // The real run deleted exactly what the dry run named.
    assert_eq!(deprecated_numbers(&p), dry_builds);
    let history_slugs: BTreeSet<String> = p
        .api
        .lines("SELECT edition_slug AS line FROM edition_history WHERE reason = 'retention'")
        .into_iter()
        .collect();
    assert_eq!(history_slugs, expected_editions);
    let caused: Vec<String> = p.api.lines(
        "SELECT COALESCE(caused_by, '-') AS line FROM edition_history WHERE reason = 'retention'",
    );
    assert!(
        caused.iter().all(|cause| cause.ends_with("(retention)")),
        "{caused:?}"
    );
    let live: BTreeSet<String> = p
        .api
        .lines("SELECT slug AS line FROM editions WHERE date_ended IS NULL")
        .into_iter()
        .collect();
    assert_eq!(live.len(), 40 - expected_editions.len());
    // Every deletion went through the queue, as DELETE /builds/<id> does.
    let deletions = p.api.lines(
        "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE kind = 'delete_build' AND state = 'OK'",
    );
    assert_eq!(deletions[0], expected_builds.len().to_string());
    // The rebuild from build 5 ran, on a build that is still there.
    assert!(!deprecated_numbers(&p).contains(&5));
    assert_eq!(
        p.api.get(&format!("/editions/{v1}")).body["build_url"],
        p.api.url(&format!("/builds/{}", generated.id(5)))
    );
    // A second run finds nothing more to delete.
    let again = retention::gc(
        &mut conn,
        &config,
        Some("demo"),
        false,
        "http://keeper.test",
    )
    .unwrap();
    assert!(
        again.ends_with("deleted 0 editions and 0 builds\n"),
        "{again}"
    );
}

/// Repointing an edition at old builds while retention runs over and over: no rebuild is ever
/// left with a deprecated build, and each repoint either succeeds or is refused with a 4xx.
fn a_build_being_rebuilt_from_is_never_collected(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "pinned", "title": "Pinned", "mode": "manual"}),
    );
    assert_eq!(created.status, 201);
    let pinned = created.body["self_url"].as_str().unwrap().to_owned();
    p.drain();
    let product = p
        .api
        .lines("SELECT CAST(id AS TEXT) AS line FROM products WHERE slug = 'demo'")[0]
        .clone();
    let old = sql_time(chrono::Utc::now().naive_utc() - Duration::days(400));
    // One old build a round, which only the repoint racing retention for it can save.
    let add_build = |n: i64| -> String {
        p.api.execute(&format!(
            "INSERT INTO builds (product_id, slug, git_refs, uploaded, date_created, \
             surrogate_key) VALUES ({product}, 'r{n}', '[\"main\"]', TRUE, '{old}', '{:032x}')",
            0xc000 + n
        ));
        p.api.lines(&format!(
            "SELECT CAST(id AS TEXT) AS line FROM builds WHERE slug = 'r{n}'"
        ))[0]
            .clone()
    };
    // Everything not in use is collectable.
    let config = RetentionConfig {
        enabled: true,
        keep_newest: 0,
        keep_days: 0,
        rollback_days: 0,
        edition_days: 100_000,
        ..RetentionConfig::default()
    };
    // The collector runs once as each repoint is sent, so the two overlap every time without
    // either starving the other of SQLite's write lock.
    let (send, each) = std::sync::mpsc::channel::<()>();
    let db = &p.api.db;
    let (statuses, collected) = std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut conn = db.connect();
            let mut collected = 0;
            for () in each {
                let report = retention::gc(
                    &mut conn,
                    &config,
                    Some("demo"),
                    false,
                    "http://keeper.test",
                )
                .unwrap();
                collected += report
                    .lines()
                    .filter(|line| line.trim().starts_with("deleted build "))
                    .count();
            }
            collected
        });
        let mut statuses = Vec::new();
        for n in 1..=60 {
            let id = add_build(n);
            // Odd rounds race; even rounds let the repoint commit first, so that retention
            // always meets some builds it must keep because a rebuild is queued from them.
            let racing = n % 2 == 1;
            if racing {
                send.send(()).unwrap();
            }
            let reply = p.api.patch(
                &pinned,
                &p.admin,
                json!({"build_url": p.api.url(&format!("/builds/{id}"))}),
            );
            if reply.status != 200 {
                assert!(
                    reply.body["message"]
                        .as_str()
                        .unwrap()
                        .contains("deprecated"),
                    "{reply:?}"
                );
            }
            statuses.push(reply.status);
            if !racing {
                send.send(()).unwrap();
            }
        }
        drop(send);
        (statuses, collector.join().unwrap())
    });
    assert!(
        statuses.iter().all(|status| matches!(status, 200 | 400)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&200),
        "no repoint got through: {statuses:?}"
    );
    assert!(collected > 0, "retention collected nothing");
    // No unfinished rebuild targets a deprecated build, and every queued rebuild runs.
    let broken = p.api.lines(
        "SELECT CAST(o.id AS TEXT) AS line FROM operations o JOIN builds b ON b.id = o.build_id \
         WHERE o.kind = 'rebuild_edition' AND o.state IN ('READY', 'WORKING') \
         AND b.date_ended IS NOT NULL",
    );
    assert!(
        broken.is_empty(),
        "rebuilds of deprecated builds: {broken:?}"
    );
    p.drain();
    let failed = p.api.lines(
        "SELECT COALESCE(message, '') AS line FROM operations WHERE kind = 'rebuild_edition' AND state = 'FAILED'",
    );
    assert!(failed.is_empty(), "{failed:?}");
}

on_both_backends!(
    retention_keeps_exactly_what_the_policy_says,
    a_build_being_rebuilt_from_is_never_collected,
);
