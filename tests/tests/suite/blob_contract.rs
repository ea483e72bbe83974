//! One contract for the blob store port, run on the local file store and on S3 (moto on
//! 127.0.0.1, path-style, started by scripts/test).

use domain::ports::BlobStore;

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
    // A local file in, and back out to another file (a fetched video, 3 MiB).
    let dir = tempfile::tempdir().unwrap();
    let video: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("in.mp4"), &video).unwrap();
    blobs.put_file("fetched/0004", &dir.path().join("in.mp4"), "video/mp4").await.unwrap();
    assert!(blobs.fetch_to("fetched/0004", &dir.path().join("out.mp4")).await.unwrap());
    assert!(std::fs::read(dir.path().join("out.mp4")).unwrap() == video, "the file comes back byte for byte");
    assert!(!blobs.fetch_to("fetched/none", &dir.path().join("none.mp4")).await.unwrap());
    // Asked without reading it: there, an empty one too, and not there.
    assert!(blobs.exists("fetched/0004").await.unwrap() && blobs.exists("jobs/0003/empty").await.unwrap());
    assert!(!blobs.exists("fetched/none").await.unwrap());
    // Deleted, it is gone; deleting what is not there is not an error.
    blobs.delete("jobs/0002/frame.bin").await.unwrap();
    assert_eq!(blobs.get("jobs/0002/frame.bin").await.unwrap(), None);
    assert!(!blobs.exists("jobs/0002/frame.bin").await.unwrap());
    blobs.delete("jobs/0002/frame.bin").await.unwrap();
    assert!(blobs.get("jobs/0003/empty").await.unwrap().is_some(), "only that key");
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

/// Presigned S3 URLs work over plain HTTP with no credentials: the PUT lands the bytes, the
/// GET gives them back, and the PUT's signature covers the declared type.
#[tokio::test]
async fn s3_presigned_urls_put_and_get_against_moto() {
    use domain::ports::UrlSigner;
    use std::time::Duration;
    let config = crate::aws::config().await;
    let bucket = format!("goviral-test-{}", uuid::Uuid::now_v7().simple());
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let blobs = goviral_aws::S3BlobStore::new(&config, &bucket, true);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let video: Vec<u8> = (0..=255u8).cycle().take(4096).collect();

    let put = blobs.sign_put("uploads/u/1", "video/mp4", video.len() as u64, Duration::from_secs(900)).await.unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.url.starts_with(&format!("{}/{bucket}/uploads/u/1?", crate::aws::endpoint())), "{}", put.url);
    assert!(put.url.contains("X-Amz-Signature=") && put.url.contains("X-Amz-Expires=900"), "{}", put.url);
    let signed = put.url.split("X-Amz-SignedHeaders=").nth(1).unwrap().split('&').next().unwrap();
    assert!(signed.contains("content-length") && signed.contains("content-type"), "type and size are signed: {signed}");
    assert_eq!(put.headers.get("content-type").map(String::as_str), Some("video/mp4"));
    let remaining = put.expires_at - domain::model::now();
    assert!(remaining > time::Duration::seconds(890) && remaining <= time::Duration::seconds(900));

    let mut request = http.put(&put.url).body(video.clone());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    assert_eq!(blobs.get("uploads/u/1").await.unwrap(), Some(video.clone()));
    let head = s3.head_object().bucket(&bucket).key("uploads/u/1").send().await.unwrap();
    assert_eq!(head.content_type(), Some("video/mp4"));

    let get = blobs.sign_get("uploads/u/1", Duration::from_secs(300)).await.unwrap();
    assert_eq!(get.method, "GET");
    let fetched = http.get(&get.url).send().await.unwrap();
    assert!(fetched.status().is_success());
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), video.as_slice());
}
