//! Settings the nodes of a cluster share through the database.

use super::{Result, Store};

impl Store {
    /// The key that signs tokens: made by the first node that asks and kept in the
    /// database, so every node of the cluster signs and checks with the same key and no
    /// operator has to hand one out. (`ROOST_TOKEN_KEY` overrides it; see `cli::serve`.)
    pub async fn token_key(&self) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
            .map_err(|_| super::StoreError::Invalid("no system randomness".into()))?;
        sqlx::query("INSERT INTO settings (name, value) VALUES ('token-key', $1) ON CONFLICT (name) DO NOTHING")
            .bind(hex::encode(fresh))
            .execute(self.pool())
            .await?;
        let value: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'token-key'")
                .fetch_one(self.pool())
                .await?;
        hex::decode(value.trim())
            .map_err(|_| super::StoreError::Invalid("settings.token-key is not hex".into()))
    }
}
