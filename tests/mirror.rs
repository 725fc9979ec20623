//! The copy step of rebuilds and renames against the in-process S3 server: the destination ends
//! with exactly the source's keys, whether its leftovers were few enough to keep in memory or
//! had to be found again by a second listing; a sibling prefix (`v/1` vs `v/10`) is untouched.

mod storage_support;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use keeper::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use keeper::ops::copy::{mirror, remove_leftovers, Leftovers};
use keeper::ops::ProgressCounter;
use keeper::storage::{ObjectHeaders, ObjectStore};
use storage_support::S3TestServer;

const SOURCE_FILES: usize = 30;
/// Keys under the edition before the mirror that the build lacks.
const LEFTOVER_FILES: usize = 20;

struct Setup {
    store: Arc<dyn ObjectStore>,
    build: BucketPrefix,
    edition: BucketPrefix,
    sibling: BucketPrefix,
}

impl Setup {
    /// The build's files, an edition holding some of the same names and `LEFTOVER_FILES` others,
    /// and a sibling edition whose prefix extends the edition's.
    async fn new(server: &S3TestServer) -> Self {
        let product = ProductSlug::parse("demo").unwrap();
        let edition =
            |slug: &str| BucketPrefix::edition(&product, &EditionSlug::parse(slug).unwrap());
        let setup = Self {
            store: Arc::new(server.store(7).await),
            build: BucketPrefix::build(&product, &BuildSlug::parse("1").unwrap()),
            edition: edition("1"),
            sibling: edition("10"),
        };
        for n in 0..SOURCE_FILES {
            setup
                .put(&setup.build, &format!("d{}/page{n:02}.html", n % 3))
                .await;
        }
        for n in 0..5 {
            setup
                .put(&setup.edition, &format!("d{}/page{n:02}.html", n % 3))
                .await;
        }
        for n in 0..LEFTOVER_FILES {
            setup.put(&setup.edition, &format!("old/{n:02}.html")).await;
        }
        setup.put(&setup.sibling, "old/00.html").await;
        setup
    }

    async fn put(&self, prefix: &BucketPrefix, path: &str) {
        self.store
            .put(
                &prefix.key(path).unwrap(),
                Bytes::from(path.to_owned()),
                &ObjectHeaders::default(),
            )
            .await
            .unwrap();
    }

    async fn relative_keys(&self, prefix: &BucketPrefix) -> Vec<String> {
        let pages: Vec<Vec<keeper::storage::ObjectSummary>> = self
            .store
            .list(prefix.as_str())
            .try_collect()
            .await
            .unwrap();
        pages
            .into_iter()
            .flatten()
            .map(|object| object.key[prefix.as_str().len()..].to_owned())
            .collect()
    }

    /// Mirrors the build onto the edition keeping at most `limit` leftovers, removes them, and
    /// checks the end state; returns what the mirror reported.
    async fn mirror_and_check(&self, limit: usize) -> Leftovers {
        let progress = Arc::new(ProgressCounter::new());
        let leftovers = mirror(
            &self.store,
            &self.build,
            &self.edition,
            "editionkey",
            4,
            limit,
            &progress,
        )
        .await
        .unwrap();
        let removed = remove_leftovers(
            &self.store,
            &self.build,
            &self.edition,
            leftovers.clone(),
            4,
        )
        .await
        .unwrap();
        assert_eq!(removed, LEFTOVER_FILES as u64);
        assert_eq!(progress.snapshot().done, SOURCE_FILES as i64);
        assert_eq!(
            self.relative_keys(&self.edition).await,
            self.relative_keys(&self.build).await
        );
        assert_eq!(self.relative_keys(&self.sibling).await, vec!["old/00.html"]);
        leftovers
    }
}

fn expected_leftovers(edition: &BucketPrefix) -> Vec<String> {
    (0..LEFTOVER_FILES)
        .map(|n| edition.key(&format!("old/{n:02}.html")).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_within_the_limit_are_listed_then_removed() {
    let server = S3TestServer::start().await;
    let setup = Setup::new(&server).await;
    let reported = setup.mirror_and_check(LEFTOVER_FILES).await;
    assert_eq!(
        reported,
        Leftovers::Listed(expected_leftovers(&setup.edition))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_beyond_the_limit_are_found_again_and_removed() {
    let server = S3TestServer::start().await;
    let setup = Setup::new(&server).await;
    let reported = setup.mirror_and_check(LEFTOVER_FILES - 1).await;
    assert_eq!(reported, Leftovers::TooMany);
}
