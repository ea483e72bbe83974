//! The committed model is exactly what the training command builds from the archive, and it
//! keeps its measured quality on the dev split. Needs the Upworthy archive (present on the
//! project's machines, found by scripts/test; the product itself never reads it).

use std::path::PathBuf;

use goviral_scoring::train::{self, TrainOptions};

fn data(split: &str) -> Option<PathBuf> {
    // scripts/test finds the archive and sets this; a bare `cargo test` looks next to the checkout.
    let dir = std::env::var("GOVIRAL_UPWORTHY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/upworthy"));
    let path = dir.join(format!("{split}.csv"));
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} is not on this machine (set GOVIRAL_UPWORTHY_DIR)", path.display());
        None
    }
}

#[test]
fn the_committed_model_is_reproducible_from_the_archive_and_holds_its_dev_accuracy() {
    let (Some(train_csv), Some(dev_csv)) = (data("train"), data("dev")) else { return };
    let committed = goviral_scoring::Model::embedded();
    let seed = committed.header.training["seed"].as_u64().unwrap();
    // scripts/test installs the embeddings (scripts/minilm) and sets this.
    let dir = std::env::var("GOVIRAL_MINILM_DIR").expect("GOVIRAL_MINILM_DIR: run the suite through scripts/test");
    let embeddings = train::Embeddings::load(std::path::Path::new(&dir)).unwrap();
    let rebuilt = train::train(
        &train::read_variants(&train_csv).unwrap(),
        &TrainOptions { seed, embeddings: Some(&embeddings), name: committed.header.name.clone(), folds: train::FOLDS, outcome_pairs: &[] },
    );
    if rebuilt.to_bytes() != goviral_scoring::Model::embedded_bytes() {
        std::fs::write(std::env::temp_dir().join("rebuilt.gvnm"), rebuilt.to_bytes()).unwrap();
        panic!("shared/scoring/model/ is stale: rerun `goviral model train` (the rebuilt model is in the temp dir)");
    }

    let dev = train::evaluate(committed, &train::read_variants(&dev_csv).unwrap(), 7);
    assert_eq!(dev.pairs, 1251);
    assert!(dev.accuracy >= 0.68, "{dev:?}");
    assert!(dev.ece < 0.05, "{dev:?}");
    assert!(dev.accuracy > dev.longer_wins_baseline + 0.1, "{dev:?}");
}
