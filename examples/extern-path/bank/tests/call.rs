//! A call over the service of crate B with crate A's types: the stubs and handlers
//! take `rgrpc_example_shared_types::shared::v1::*` (this would not compile if B had
//! generated its own copies), and B's generated file holds none of them.

use std::time::Duration;

use rgrpc_example_bank::MemoryBank;
use rgrpc_example_bank::bank::v1::{BankStub, DepositRequest, register_bank_server};
use rgrpc_example_shared_types::shared::v1::{Account, Money};
use rgrpc_runtime::{Channel, Code, Server};

#[tokio::test]
async fn a_call_works_with_the_shared_crates_types() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = Server::new();
    register_bank_server(&mut server, MemoryBank::default());
    let handle = server.handle();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let step = Duration::from_secs(10);

    let channel = tokio::time::timeout(step, Channel::connect(&addr.to_string()))
        .await
        .unwrap()
        .unwrap();
    let client = BankStub::new(channel);
    let deposit = |units| DepositRequest {
        account_id: "alice".into(),
        amount: Some(Money::new("EUR", units)),
    };
    tokio::time::timeout(step, client.deposit(deposit(5)))
        .await
        .unwrap()
        .unwrap();
    let account: Account = tokio::time::timeout(step, client.deposit(deposit(7)))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(account.id, "alice");
    assert_eq!(account.balance, Some(Money::new("EUR", 12)));
    let balance: Money = tokio::time::timeout(
        step,
        client.balance(Account {
            id: "alice".into(),
            balance: None,
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    assert_eq!(balance, Money::new("EUR", 12));
    let missing = tokio::time::timeout(
        step,
        client.balance(Account {
            id: "bob".into(),
            balance: None,
        }),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    handle.stop();
    let _ = tokio::time::timeout(step, serving).await;
}

#[test]
fn the_service_crate_generates_no_copy_of_the_shared_types() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/bank.v1.rs"));
    assert!(
        generated.contains("pub struct DepositRequest"),
        "{generated}"
    );
    assert!(!generated.contains("pub struct Money"), "{generated}");
    assert!(!generated.contains("pub struct Account"), "{generated}");
    assert!(
        generated.contains("::rgrpc_example_shared_types::shared::v1::Account"),
        "{generated}"
    );
    let out = std::path::Path::new(env!("OUT_DIR"));
    assert!(
        !out.join("shared.v1.rs").exists(),
        "shared.v1 generated here too"
    );
}
