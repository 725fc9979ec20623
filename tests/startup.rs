//! Start-up on both backends: the signing key is generated once and kept in the database (or taken
//! from KEEPER_SECRET_KEY), and the bootstrap administrator is created once, never overwritten.

mod common;

use common::{TestBackend, TestDatabase};
use keeper::auth::password::verify_password;
use keeper::db::users::find_user;
use keeper::domain::Permissions;
use keeper::domain::Username;
use secrecy::{ExposeSecret, SecretString};

fn the_generated_signing_key_survives_restarts(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let first = keeper::startup::prepare(&db.config(&[]))
        .unwrap()
        .secret_key;
    let second = keeper::startup::prepare(&db.config(&[]))
        .unwrap()
        .secret_key;
    assert_eq!(first.expose_secret().len(), 64);
    assert_eq!(first.expose_secret(), second.expose_secret());

    let configured = "a-configured-key-of-at-least-32-characters";
    let third = keeper::startup::prepare(&db.config(&[("KEEPER_SECRET_KEY", configured)]))
        .unwrap()
        .secret_key;
    assert_eq!(third.expose_secret(), configured);

    let other_db = TestDatabase::new(backend);
    let other = keeper::startup::prepare(&other_db.config(&[]))
        .unwrap()
        .secret_key;
    assert_ne!(
        other.expose_secret(),
        first.expose_secret(),
        "keys are random per database"
    );
}

fn the_bootstrap_admin_is_created_once(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "first password"),
    ]);
    keeper::startup::prepare(&config).unwrap();
    // A restart with another password must not silently reset the administrator's password.
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "second password"),
    ]);
    keeper::startup::prepare(&config).unwrap();

    let user = find_user(&mut db.connect(), &Username::parse("admin").unwrap())
        .unwrap()
        .expect("the bootstrap user exists");
    assert_eq!(
        Permissions::from_bits(user.permissions),
        Some(Permissions::ALL)
    );
    assert!(verify_password(
        &SecretString::from("first password"),
        &user.password_hash
    ));
    assert!(!verify_password(
        &SecretString::from("second password"),
        &user.password_hash
    ));
}

fn a_weak_bootstrap_password_stops_start_up(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let config = db.config(&[
        ("KEEPER_BOOTSTRAP_USER", "admin"),
        ("KEEPER_BOOTSTRAP_PASSWORD", "short"),
    ]);
    let err = keeper::startup::prepare(&config).err().unwrap();
    assert!(
        format!("{err:#}").contains("KEEPER_BOOTSTRAP_PASSWORD"),
        "{err:#}"
    );
    assert!(
        find_user(&mut db.connect(), &Username::parse("admin").unwrap())
            .unwrap()
            .is_none()
    );
}

on_both_backends!(
    the_generated_signing_key_survives_restarts,
    the_bootstrap_admin_is_created_once,
    a_weak_bootstrap_password_stops_start_up,
);
