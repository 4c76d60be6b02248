//! `orders-dynamo --create-table-only`: the setup job of a deployment makes the table and
//! exits, once the table takes writes; run again, it finds the table and changes nothing.

use aws_sdk_dynamodb::types::{KeyType, TableStatus};
use local_mesh::{service_binary, unique_name};

use crate::common::dynamodb;

#[tokio::test]
async fn create_table_only_makes_the_table_active_and_exits_and_a_rerun_keeps_it() {
    let endpoint = local_mesh::dynamodb_endpoint();
    let table = unique_name("orders_setup");
    let dynamo = dynamodb(&endpoint);
    let mut created_at = None;
    for run in ["first", "second"] {
        let output = tokio::process::Command::new(service_binary("orders-dynamo"))
            .args(["--create-table-only", "--table", &table])
            .args(["--dynamodb-endpoint", &endpoint])
            .kill_on_drop(true)
            .output()
            .await
            .expect("orders-dynamo runs");
        assert!(
            output.status.success(),
            "{run} run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let described = dynamo
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("the table exists");
        let description = described.table().expect("a description");
        assert_eq!(description.table_status(), Some(&TableStatus::Active));
        let keys: Vec<(&str, &KeyType)> = description
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        assert_eq!(keys, [("pk", &KeyType::Hash), ("sk", &KeyType::Range)]);
        let indexes: Vec<&str> = description
            .global_secondary_indexes()
            .iter()
            .filter_map(|index| index.index_name())
            .collect();
        assert_eq!(indexes, ["gsi1"]);
        // The second run found the table the first one made.
        let at = description.creation_date_time().copied();
        assert!(
            created_at.is_none() || created_at == at,
            "{run} run made a new table"
        );
        created_at = at;
    }
    dynamo
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("the test's table is deleted");
}
