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

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
}

/// The two counter tables exactly as template.yaml declares them (keys and TTL attribute).
pub async fn counter_tables(config: &aws_config::SdkConfig) -> (String, String) {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let (counters, keys) = (unique("counters"), unique("idempotency"));
    dynamo
        .create_table()
        .table_name(&counters)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("key"))
        .key_schema(key("key", KeyType::Hash))
        .send()
        .await
        .unwrap();
    dynamo
        .create_table()
        .table_name(&keys)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("user_id"))
        .attribute_definitions(string_attribute("key"))
        .key_schema(key("user_id", KeyType::Hash))
        .key_schema(key("key", KeyType::Range))
        .send()
        .await
        .unwrap();
    for table in [&counters, &keys] {
        dynamo
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().unwrap())
            .send()
            .await
            .unwrap();
    }
    (counters, keys)
}

/// The usage totals table exactly as template.yaml declares it (keys and TTL attribute).
pub async fn usage_table(config: &aws_config::SdkConfig) -> String {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let table = unique("usage");
    dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("user_id"))
        .attribute_definitions(string_attribute("period"))
        .key_schema(key("user_id", KeyType::Hash))
        .key_schema(key("period", KeyType::Range))
        .send()
        .await
        .unwrap();
    dynamo
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().unwrap())
        .send()
        .await
        .unwrap();
    table
}

/// Usage totals in DynamoDB on moto, with fresh tables: (the adapter, its totals table).
pub async fn usage_totals() -> (goviral_aws::DynamoUsageTotals, String) {
    let config = config().await;
    let (_, keys) = counter_tables(&config).await;
    let table = usage_table(&config).await;
    (goviral_aws::DynamoUsageTotals::new(&config, table.clone(), keys), table)
}
