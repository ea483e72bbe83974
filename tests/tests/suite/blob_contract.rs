//! One contract for the blob store port, run on the local file store and on S3 (moto on
//! 127.0.0.1, path-style, started by scripts/test).

use domain::pipeline::BlobStore;

async fn contract(blobs: &dyn BlobStore) {
    assert_eq!(blobs.get("jobs/none/features.json").await.unwrap(), None, "a missing key is None, not an error");
    let doc = br#"{"features": {"chars": 42}}"#.to_vec();
    blobs.put("jobs/0001/features.json", doc.clone(), "application/json").await.unwrap();
    assert_eq!(blobs.get("jobs/0001/features.json").await.unwrap(), Some(doc));
    // Overwrite (a redelivered stage writes the same key again).
    blobs.put("jobs/0001/features.json", b"{}".to_vec(), "application/json").await.unwrap();
    assert_eq!(blobs.get("jobs/0001/features.json").await.unwrap().as_deref(), Some(&b"{}"[..]));
    // Binary and empty bodies survive byte for byte.
    let binary: Vec<u8> = (0..=255).collect();
    blobs.put("jobs/0002/frame.bin", binary.clone(), "application/octet-stream").await.unwrap();
    assert_eq!(blobs.get("jobs/0002/frame.bin").await.unwrap(), Some(binary));
    blobs.put("jobs/0003/empty", Vec::new(), "text/plain").await.unwrap();
    assert_eq!(blobs.get("jobs/0003/empty").await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
async fn file_blobs_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&goviral_local::blobs::FileBlobStore::new(dir.path())).await;
}

#[tokio::test]
async fn s3_blobs_keep_the_contract_against_moto() {
    let config = crate::aws::config().await;
    let bucket = format!("goviral-test-{}", uuid::Uuid::now_v7().simple());
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    contract(&goviral_aws::S3BlobStore::new(&config, &bucket, true)).await;

    // A bucket that does not exist is an outage to retry, not a missing blob.
    let gone = goviral_aws::S3BlobStore::new(&config, "goviral-no-such-bucket", true);
    assert!(matches!(gone.get("k").await, Err(domain::Error::Unavailable(_))));
}
