//! The connection upload.cgi decides on: the statements of each step of
//! a decision ([`Decisions`]) go to the server together and are answered
//! in one round trip (rust-postgres's asynchronous client pipelines the
//! requests it is given at once). A decision that commits makes three
//! round trips after connecting: the profiles; `START TRANSACTION`, the
//! row lock and the node's entry; the write and `COMMIT`. The server
//! runs them in the order sent, each statement with its own snapshot, so
//! the entry is read once the lock is held, as when they are sent one by
//! one.

use super::store::{self, Commit, CommitValues, Decisions, Locked, Profile};
use super::{url, why};
use anyhow::{anyhow, Result};
use postgres::types::Type;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::NoTls;

/// How long closing the connection may take once the decision is made.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// A connection to a section's database, with its runtime.
pub struct Pipe {
    runtime: tokio::runtime::Runtime,
    client: Option<tokio_postgres::Client>,
    connection: Option<tokio::task::JoinHandle<()>>,
    /// Why the connection ended, when it failed: the server's words
    /// ("terminating connection due to administrator command"), which a
    /// request on a closed connection does not carry.
    ended: Arc<Mutex<Option<String>>>,
    section: String,
    shown: String,
}

/// Connects to `url_text` (DATABASE's value, [`url::config`]) for
/// `section`.
pub fn connect(url_text: &str, section: &str) -> Result<Pipe> {
    let config = url::client_config(url_text)?;
    let shown = url::shown(url_text);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (client, connection) = runtime
        .block_on(config.connect(NoTls))
        .map_err(|e| anyhow!("{shown}: cannot connect: {}", why(&e)))?;
    let ended = Arc::new(Mutex::new(None));
    let ended_by = Arc::clone(&ended);
    let connection = runtime.spawn(async move {
        if let Err(e) = connection.await {
            if let Ok(mut slot) = ended_by.lock() {
                *slot = Some(why(&e));
            }
        }
    });
    Ok(Pipe {
        runtime,
        client: Some(client),
        connection: Some(connection),
        ended,
        section: section.to_string(),
        shown,
    })
}

impl Pipe {
    fn client(&self) -> Result<&tokio_postgres::Client> {
        self.client
            .as_ref()
            .ok_or_else(|| anyhow!("{}: the connection is closed", self.shown))
    }

    /// `e`, in the server's words when the connection ended with some.
    fn failed(&self, e: tokio_postgres::Error) -> anyhow::Error {
        let ended = self.ended.lock().ok().and_then(|s| s.clone());
        match ended {
            Some(why) if e.is_closed() => anyhow!("{why}"),
            _ => anyhow!("{}", why(&e)),
        }
    }
}

impl Decisions for Pipe {
    fn section(&self) -> &str {
        &self.section
    }

    fn profiles(&mut self) -> Result<Vec<Profile>> {
        let c = self.client()?;
        let rows = self
            .runtime
            .block_on(c.query_typed(store::PROFILES, &[store::text(&self.section)]))
            .map_err(|e| self.failed(e))?;
        rows.iter().map(store::profile_at).collect()
    }

    fn lock(&mut self, profile: &str, pref: Option<&serde_json::Value>) -> Result<Locked> {
        let c = self.client()?;
        let section = &self.section;
        let identifies = pref.is_some_and(store::identifies);
        let empty = serde_json::Value::Null;
        let pref_value = pref.unwrap_or(&empty);
        let locate_params = [
            store::text(section),
            store::text(&profile),
            (pref_value as _, Type::JSONB),
            (&identifies as _, Type::BOOL),
        ];
        let lock_params = [store::text(section), store::text(&profile)];
        let begin = c.batch_execute("START TRANSACTION");
        let lock = c.query_typed(store::LOCK_AND_LIST, &lock_params);
        let (begun, locked, found) = self.runtime.block_on(async {
            match pref {
                Some(_) => {
                    let locate = c.query_typed(store::LOCATE, &locate_params);
                    let (b, l, f) = futures_util::future::join3(begin, lock, locate).await;
                    (b, l, Some(f))
                }
                None => {
                    let (b, l) = futures_util::future::join(begin, lock).await;
                    (b, l, None)
                }
            }
        });
        begun.map_err(|e| self.failed(e))?;
        let (left, profiles) = store::locked(&locked.map_err(|e| self.failed(e))?, profile)?;
        let located = match found {
            Some(rows) => Some(store::located(&rows.map_err(|e| self.failed(e))?)?),
            None => None,
        };
        Ok(Locked {
            left,
            profiles,
            located,
        })
    }

    fn commit(&mut self, d: &Commit<'_>) -> Result<()> {
        let c = self.client()?;
        let values = CommitValues::new(d);
        let params = values.params(&self.section, d);
        let write = c.execute_typed(store::COMMIT_DECISION, &params);
        let commit = c.batch_execute("COMMIT");
        let (written, committed) = self
            .runtime
            .block_on(futures_util::future::join(write, commit));
        written.map_err(|e| self.failed(e))?;
        committed.map_err(|e| self.failed(e))?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        let c = self.client()?;
        self.runtime
            .block_on(c.batch_execute("ROLLBACK"))
            .map_err(|e| self.failed(e))
    }

    fn keep_hw(&mut self, sysname: &str, hw: &str) -> Result<()> {
        let c = self.client()?;
        let params = [
            store::text(&self.section),
            store::text(&sysname),
            store::text(&hw),
        ];
        self.runtime
            .block_on(c.execute_typed(store::KEEP_HW, &params))
            .map_err(|e| self.failed(e))?;
        Ok(())
    }
}

impl Drop for Pipe {
    /// Closes the connection as the server expects (a Terminate message,
    /// sent once the client is gone), within [`CLOSE_WITHIN`].
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(connection) = self.connection.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(CLOSE_WITHIN, connection).await });
        }
    }
}
