//! A post made ready for its fan-out, once per node: loaded, composed (`compose`), split
//! into a template, with the plugin view and the signer its copies need. Batches of the
//! same post share it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;

use super::{
    compose,
    dkim::Signer,
    route::{Dmarc, Router},
    template::Template,
};
use crate::{
    config::ListConfig,
    message,
    plugins::{Bound, Hook, wit},
    store::{PostForDelivery, Store},
};

/// Everything the copies of one post share.
pub struct Prepared {
    pub id: String,
    pub list: ListConfig,
    pub template: Template,
    /// Links declared by plugins (`track-link`), filled per recipient as tracking URLs.
    pub links: Vec<String>,
    /// When the post became deliverable; expiry counts from here.
    pub since: i64,
    /// The plugins with an `on-deliver` hook, and the post as they see it.
    pub on_deliver: Vec<Bound>,
    pub wit: Option<wit::Message>,
    pub signer: Option<Arc<Signer>>,
}

/// Why a post cannot be prepared; its batches wait and are tried again.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("post {0} not found")]
    Missing(String),
    #[error("list {0} is not configured on this node")]
    UnknownList(String),
    #[error("the stored edits of post {0} cannot be read")]
    BadEdits(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

type Slot = Arc<OnceCell<Arc<Prepared>>>;

const KEEP: usize = 256;

/// Prepared posts of this node, by id. Bounded: when full, it is emptied (a post is simply
/// prepared again if a later batch needs it).
pub struct Preparer {
    pub store: Store,
    pub router: Arc<Router>,
    pub lists: HashMap<String, ListConfig>,
    pub chains: HashMap<String, Arc<Vec<Bound>>>,
    pub signers: HashMap<String, Arc<Signer>>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Preparer {
    pub fn new(
        store: Store,
        router: Arc<Router>,
        lists: HashMap<String, ListConfig>,
        chains: HashMap<String, Arc<Vec<Bound>>>,
        signers: HashMap<String, Arc<Signer>>,
    ) -> Preparer {
        Preparer {
            store,
            router,
            lists,
            chains,
            signers,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The prepared post, made once however many batches ask at the same time.
    pub async fn get(&self, id: &str) -> Result<Arc<Prepared>, PrepareError> {
        let slot: Slot = match self.slots.lock() {
            Ok(mut slots) => {
                if slots.len() >= KEEP && !slots.contains_key(id) {
                    slots.clear();
                }
                slots.entry(id.to_string()).or_default().clone()
            }
            Err(_) => Arc::new(OnceCell::new()),
        };
        slot.get_or_try_init(|| self.prepare(id)).await.cloned()
    }

    async fn prepare(&self, id: &str) -> Result<Arc<Prepared>, PrepareError> {
        let post = self
            .store
            .post_for_delivery(id)
            .await?
            .ok_or_else(|| PrepareError::Missing(id.to_string()))?;
        let list = self
            .lists
            .get(&post.list)
            .cloned()
            .ok_or_else(|| PrepareError::UnknownList(post.list.clone()))?;
        // Notices and mail sent on to the owners go out as they are.
        let as_is = post.kind == "notice" || post.kind == "owner";
        let (bytes, links) = if as_is {
            (post.raw.clone(), Vec::new())
        } else {
            let strict = match compose::author(&post.raw) {
                Some((_, author)) => {
                    let domain = author.rsplit_once('@').map_or("", |(_, d)| d);
                    self.router.dmarc(domain).await == Dmarc::Strict
                }
                None => false,
            };
            compose::post(&list, &post.raw, post.edits.as_deref(), strict)
                .ok_or_else(|| PrepareError::BadEdits(id.to_string()))?
        };
        let on_deliver: Vec<Bound> = if as_is {
            Vec::new()
        } else {
            self.chains
                .get(&post.list)
                .map(|c| {
                    c.iter()
                        .filter(|b| b.plugin.implements(Hook::OnDeliver))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let wit = (!on_deliver.is_empty()).then(|| plugin_view(&post, &bytes));
        Ok(Arc::new(Prepared {
            id: post.id,
            signer: self.signers.get(&list.address).cloned(),
            list,
            template: Template::new(bytes),
            links,
            since: post.since,
            on_deliver,
            wit,
        }))
    }
}

/// The post as `on-deliver` sees it: as composed for delivery (edits and list fields in).
fn plugin_view(post: &PostForDelivery, bytes: &[u8]) -> wit::Message {
    let body = message::body_start(bytes);
    wit::Message {
        id: post.id.clone(),
        list_address: post.list.clone(),
        envelope: wit::Envelope {
            mail_from: post.mail_from.clone(),
            rcpt_to: vec![post.list.clone()],
            client_ip: String::new(),
            helo: String::new(),
        },
        headers: message::fields(bytes)
            .into_iter()
            .map(|f| wit::Header {
                name: f.name,
                value: f.value,
            })
            .collect(),
        body: bytes[body..].to_vec(),
        size: bytes.len() as u64,
        received_at: u64::try_from(post.since).unwrap_or(0),
    }
}
