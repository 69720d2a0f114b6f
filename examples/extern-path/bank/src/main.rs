//! Starts the `Bank` server on 127.0.0.1 (a free port), deposits twice with the
//! shared crate's `Money`, and prints the account.

use rgrpc_example_bank::MemoryBank;
use rgrpc_example_bank::bank::v1::{BankStub, DepositRequest, register_bank_server};
use rgrpc_example_shared_types::shared::v1::Money;
use rgrpc_runtime::{Channel, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut server = Server::new();
    register_bank_server(&mut server, MemoryBank::default());
    let handle = server.handle();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));

    let client = BankStub::new(Channel::connect(&addr.to_string()).await?);
    for units in [5, 7] {
        let account = client
            .deposit(DepositRequest {
                account_id: "alice".into(),
                amount: Some(Money::new("EUR", units)),
            })
            .await?;
        println!("{:?}", account.into_inner());
    }
    handle.stop();
    serving.await??;
    Ok(())
}
