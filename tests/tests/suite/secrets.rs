//! Secrets Manager (moto): the secrets a function's environment names by ARN become the
//! settings the rest of the code reads, once, at init.

use std::collections::HashMap;

#[tokio::test]
async fn secrets_named_by_arn_become_settings() {
    let config = crate::aws::config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let arn = |name: &'static str, value: String| {
        let sm = sm.clone();
        async move { sm.create_secret().name(crate::aws::unique(name)).secret_string(value).send().await.unwrap().arn().unwrap().to_string() }
    };
    let jwt = arn("jwt", "k".repeat(64)).await;
    let openai = arn("openai", "sk-test-123\n".into()).await;
    let db = arn(
        "db",
        r#"{"username":"goviral","password":"s3cr#t/pw","host":"db.internal","port":5432,"dbname":"goviral","engine":"postgres"}"#.into(),
    )
    .await;
    let apps = arn("platform-apps", r#"{"youtube": {"client_id": "yt-client", "client_secret": "yt-secret"}, "x": {"client_id": "x-client", "client_secret": "x-secret"}}"#.into()).await;
    let env: HashMap<&str, String> = HashMap::from([
        ("GOVIRAL_PLATFORM_APPS_SECRET_ARN", apps),
        ("GOVIRAL_JWT_SECRET_ARN", jwt),
        ("GOVIRAL_OPENAI_SECRET_ARN", openai),
        ("GOVIRAL_DATABASE_SECRET_ARN", db),
        ("GOVIRAL_DATABASE_HOST", "goviral-proxy.proxy-abc.us-east-1.rds.amazonaws.com".into()),
    ]);
    let settings = goviral_aws::secrets::resolve(&config, |k| env.get(k).cloned()).await.unwrap();
    assert_eq!(settings["GOVIRAL_JWT_SECRET"], "k".repeat(64));
    assert_eq!(settings["GOVIRAL_OPENAI_API_KEY"], "sk-test-123", "trimmed");
    assert_eq!(
        settings["GOVIRAL_DATABASE_URL"],
        "postgres://goviral:s3cr%23t%2Fpw@goviral-proxy.proxy-abc.us-east-1.rds.amazonaws.com:5432/goviral?sslmode=verify-full"
    );
    // The settings feed the same configuration the local server reads.
    let lookup = |k: &str| settings.get(k).cloned();
    let parsed = goviral_app::Config::from_lookup(goviral_app::Profile::Aws, lookup).unwrap();
    assert!(parsed.openai.is_some());
    let apps: Vec<(domain::model::Platform, String, String)> =
        parsed.accounts.apps.iter().map(|(p, s)| (*p, s.client_id.clone(), s.client_secret.clone())).collect();
    assert_eq!(
        apps,
        [
            (domain::model::Platform::Youtube, "yt-client".into(), "yt-secret".into()),
            (domain::model::Platform::X, "x-client".into(), "x-secret".into())
        ]
    );

    // Nothing named: nothing read.
    assert!(goviral_aws::secrets::resolve(&config, |_| None).await.unwrap().is_empty());
    // A secret that does not exist stops the container's init with a clear error.
    let missing = goviral_aws::secrets::resolve(&config, |k| {
        (k == "GOVIRAL_JWT_SECRET_ARN").then(|| "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope".to_string())
    })
    .await;
    assert!(matches!(missing, Err(domain::Error::Unavailable(m)) if m.contains("GetSecretValue")));
}
