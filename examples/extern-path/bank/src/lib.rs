//! A `Bank` service whose messages come partly from another crate
//! (`rgrpc-example-shared-types`) through `extern_path` (see ../README.md).

use std::collections::HashMap;
use std::sync::Mutex;

use rgrpc_example_shared_types::shared::v1::{Account, Money};
use rgrpc_runtime::{ServerContext, Status};

/// The `bank.v1` package.
pub mod bank {
    /// `bank.v1`.
    pub mod v1 {
        #![allow(missing_docs)]
        rgrpc_runtime::include_proto!("bank.v1");
    }
}

use bank::v1::{BankServer, DepositRequest};

/// Balances in memory, one currency per account (the first deposit's).
#[derive(Default)]
pub struct MemoryBank {
    accounts: Mutex<HashMap<String, Money>>,
}

impl BankServer for MemoryBank {
    async fn deposit(
        &self,
        _ctx: &ServerContext,
        request: DepositRequest,
    ) -> Result<Account, Status> {
        let amount = request
            .amount
            .ok_or_else(|| Status::invalid_argument("amount is required"))?;
        let mut accounts = self.accounts.lock().expect("no handler panics holding it");
        let balance = accounts
            .entry(request.account_id.clone())
            .or_insert_with(|| Money::new(&amount.currency, 0));
        if balance.currency != amount.currency {
            return Err(Status::failed_precondition(format!(
                "account {} holds {}, not {}",
                request.account_id, balance.currency, amount.currency
            )));
        }
        balance.units += amount.units;
        Ok(Account {
            id: request.account_id,
            balance: Some(balance.clone()),
        })
    }

    async fn balance(&self, _ctx: &ServerContext, account: Account) -> Result<Money, Status> {
        let accounts = self.accounts.lock().expect("no handler panics holding it");
        accounts
            .get(&account.id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no account {}", account.id)))
    }
}
