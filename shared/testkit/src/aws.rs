//! The AWS emulator the suites talk to: moto's server on 127.0.0.1, started and stopped by
//! scripts/test, which exports its address as GOVIRAL_TEST_AWS_ENDPOINT; and DynamoDB tables
//! made exactly as template.yaml declares them.

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification};

pub fn endpoint() -> String {
    let endpoint = std::env::var("GOVIRAL_TEST_AWS_ENDPOINT").expect("GOVIRAL_TEST_AWS_ENDPOINT: run the suite through scripts/test");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests talk to loopback only");
    endpoint
}

pub async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A table named `prefix-…` keyed by string attributes (partition key, then an optional sort
/// key), billed per request, with TTL on `ttl`: how template.yaml declares each of ours.
async fn table(config: &aws_config::SdkConfig, prefix: &str, keys: &[&str]) -> String {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let name = unique(prefix);
    let mut create = dynamo.create_table().table_name(&name).billing_mode(BillingMode::PayPerRequest);
    for (i, attribute) in keys.iter().enumerate() {
        let kind = if i == 0 { KeyType::Hash } else { KeyType::Range };
        create = create
            .attribute_definitions(
                AttributeDefinition::builder().attribute_name(*attribute).attribute_type(ScalarAttributeType::S).build().unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name(*attribute).key_type(kind).build().unwrap());
    }
    create.send().await.unwrap();
    dynamo
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().unwrap())
        .send()
        .await
        .unwrap();
    name
}

/// The two counter tables as template.yaml declares them: (counters, idempotency keys).
pub async fn counter_tables(config: &aws_config::SdkConfig) -> (String, String) {
    (table(config, "counters", &["key"]).await, table(config, "idempotency", &["user_id", "key"]).await)
}

/// The usage totals table as template.yaml declares it.
pub async fn usage_table(config: &aws_config::SdkConfig) -> String {
    table(config, "usage", &["user_id", "period"]).await
}

/// Usage totals in DynamoDB on moto, with fresh tables: (the adapter, its totals table).
pub async fn usage_totals() -> (goviral_aws::DynamoUsageTotals, String) {
    let config = config().await;
    // The markers go to the idempotency-keys table; the counters table is not needed.
    let keys = table(&config, "idempotency", &["user_id", "key"]).await;
    let totals = usage_table(&config).await;
    (goviral_aws::DynamoUsageTotals::new(&config, totals.clone(), keys), totals)
}
