//! The model registry: every trained version of a model, with its artifact (in the blob
//! store, checked by digest), what it was trained from (the training data's hash) and by which
//! code, and its gate metrics beside the serving version's on the same fixed gate set.
//!
//! A version moves candidate → approved (or rejected) → serving → retired. Admins decide, and
//! every decision is audited with the gate metrics it was made on. A candidate that does not
//! beat the serving version on the gate cannot be approved without an explicit override, which
//! the audit records. Promotion and rollback change which version serves without a redeploy:
//! scorers re-read the serving version (the embedded server at once, Lambdas within a short
//! TTL) and swap atomically.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::now;
use crate::ports::{BlobStore, Store};
use crate::service::{App, Origin, Principal};

/// The one model the registry holds today: the text scorer.
pub const SCORER_MODEL: &str = "headline";
/// The largest artifact registered.
pub const ARTIFACT_MAX_BYTES: usize = 256 * 1024 * 1024;
const NOTE_MAX_CHARS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    Candidate,
    Approved,
    Rejected,
    Serving,
    Retired,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Candidate => "candidate",
            ModelState::Approved => "approved",
            ModelState::Rejected => "rejected",
            ModelState::Serving => "serving",
            ModelState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<ModelState> {
        [ModelState::Candidate, ModelState::Approved, ModelState::Rejected, ModelState::Serving, ModelState::Retired]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub id: Uuid,
    pub name: String,
    /// 1, 2, … per model name.
    pub version: u32,
    pub state: ModelState,
    pub artifact_key: String,
    pub artifact_sha256: String,
    pub artifact_bytes: u64,
    pub training_data_hash: String,
    pub code_version: String,
    /// The gate: this version's metrics and the serving version's, on the same gate set.
    pub metrics: Value,
    /// It beat the serving version on the gate when registered.
    pub gate_passed: bool,
    pub created_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_note: Option<String>,
    /// Approved although it did not pass the gate.
    pub overridden: bool,
    /// When it last started serving.
    pub serving_since: Option<OffsetDateTime>,
}

impl ModelVersion {
    /// How results name it: `headline@3`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A trained model to register.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub artifact: Vec<u8>,
    pub training_data_hash: String,
    pub code_version: String,
    /// `{"gate": {…this version…}, "serving": {…the serving version on the same gate…}}`.
    pub metrics: Value,
    pub gate_passed: bool,
}

/// A state change, as the store applies it (only from `from`).
#[derive(Debug, Clone)]
pub struct Decision {
    pub id: Uuid,
    pub from: Vec<ModelState>,
    pub to: ModelState,
    pub by: String,
    pub note: Option<String>,
    pub overridden: bool,
    pub at: OffsetDateTime,
}

/// Whatever serves a model: told to re-read the serving version after a promotion here, and
/// asked to re-check it when its TTL has passed.
#[async_trait]
pub trait ModelServing: Send + Sync {
    async fn refresh(&self);
    async fn recheck(&self);
}

/// Registers a trained model: its artifact goes to the blob store under its id, then the
/// version row (numbered after the name's last) as a candidate.
pub async fn register(store: &dyn Store, blobs: &dyn BlobStore, candidate: Candidate) -> Result<ModelVersion> {
    if candidate.artifact.is_empty() || candidate.artifact.len() > ARTIFACT_MAX_BYTES {
        return Err(Error::validation("artifact", format!("1 byte to {} MiB", ARTIFACT_MAX_BYTES >> 20)));
    }
    if candidate.name.is_empty() || !candidate.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::validation("name", "letters, digits, - and _ only"));
    }
    let id = Uuid::now_v7();
    let key = format!("models/{}/{id}.gvnm", candidate.name);
    let sha = hex::encode(Sha256::digest(&candidate.artifact));
    let bytes = candidate.artifact.len() as u64;
    blobs.put(&key, candidate.artifact, "application/octet-stream").await?;
    let version = ModelVersion {
        id,
        name: candidate.name,
        version: 0,
        state: ModelState::Candidate,
        artifact_key: key,
        artifact_sha256: sha,
        artifact_bytes: bytes,
        training_data_hash: candidate.training_data_hash,
        code_version: candidate.code_version,
        metrics: candidate.metrics,
        gate_passed: candidate.gate_passed,
        created_at: now(),
        decided_by: None,
        decided_at: None,
        decision_note: None,
        overridden: false,
        serving_since: None,
    };
    // No version without its artifact, and no artifact left behind without its version.
    match store.insert_model_version(&version).await {
        Ok(inserted) => Ok(inserted),
        Err(e) => {
            if let Err(cleanup) = blobs.delete(&version.artifact_key).await {
                tracing::warn!(error = %cleanup, key = %version.artifact_key, "an unregistered model artifact could not be removed");
            }
            Err(e)
        }
    }
}

/// A registered version's artifact, checked against its digest.
pub async fn artifact(blobs: &dyn BlobStore, version: &ModelVersion) -> Result<Vec<u8>> {
    let bytes =
        blobs.get(&version.artifact_key).await?.ok_or_else(|| Error::Internal(format!("{}: the artifact is missing", version.label())))?;
    if hex::encode(Sha256::digest(&bytes)) != version.artifact_sha256 {
        return Err(Error::Internal(format!("{}: the artifact does not match its digest", version.label())));
    }
    Ok(bytes)
}

fn note(text: Option<String>) -> Result<Option<String>> {
    match text {
        Some(n) if n.chars().count() > NOTE_MAX_CHARS || n.chars().any(|c| c.is_control() && c != '\n') => {
            Err(Error::validation("note", format!("at most {NOTE_MAX_CHARS} characters, no control characters")))
        }
        other => Ok(other.filter(|n| !n.trim().is_empty())),
    }
}

impl App {
    /// Serves this deployment's scorer; told after a promotion or rollback so the change is
    /// immediate here (elsewhere scorers re-read within their TTL).
    pub fn with_model_serving(mut self, serving: Arc<dyn ModelServing>) -> Self {
        self.model_serving = Some(serving);
        self
    }

    /// An operator at the command line, acting as the admin `user_id` (decisions are audited
    /// under their id, as through the API).
    pub async fn operator(&self, user_id: Uuid) -> Result<Principal> {
        let user = self.store.user_by_id(user_id).await?.filter(|u| u.is_active).ok_or(Error::NotFound("user"))?;
        let principal = Principal { user, method: crate::service::AuthMethod::Token { key_id: None } };
        principal.require_admin()?;
        Ok(principal)
    }

    pub async fn model_versions(&self, principal: &Principal, limit: u32) -> Result<Vec<ModelVersion>> {
        principal.require_admin()?;
        self.store.model_versions(limit.clamp(1, 500)).await
    }

    async fn model_version(&self, id: Uuid) -> Result<ModelVersion> {
        self.store.model_version(id).await?.ok_or(Error::NotFound("model version"))
    }

    async fn decide(
        &self,
        principal: &Principal,
        version: &ModelVersion,
        decision: Decision,
        action: &str,
        origin: &Origin,
    ) -> Result<ModelVersion> {
        if !self.store.decide_model_version(&decision).await? {
            return Err(Error::Conflict(format!(
                "{} is {}: it cannot become {} (someone decided first?)",
                version.label(),
                version.state.as_str(),
                decision.to.as_str()
            )));
        }
        let payload = json!({
            "model_version_id": version.id, "label": version.label(), "from": version.state.as_str(), "to": decision.to.as_str(),
            "note": decision.note, "overridden": decision.overridden, "gate_passed": version.gate_passed, "metrics": version.metrics,
        });
        self.audit(principal.actor(), action, payload, origin).await?;
        if decision.to == ModelState::Serving
            && let Some(serving) = &self.model_serving
        {
            serving.refresh().await;
        }
        self.model_version(version.id).await
    }

    /// Approves a candidate. One that did not beat the serving version on the gate needs
    /// `override_gate`, and the audit says so.
    pub async fn approve_model(
        &self,
        principal: &Principal,
        id: Uuid,
        note_text: Option<String>,
        override_gate: bool,
        origin: &Origin,
    ) -> Result<ModelVersion> {
        principal.require_admin()?;
        let note_text = note(note_text)?;
        let version = self.model_version(id).await?;
        if !version.gate_passed && !override_gate {
            return Err(Error::Conflict(format!(
                "{} did not beat the serving model on the gate ({}); approve with an override if you must",
                version.label(),
                gate_summary(&version.metrics)
            )));
        }
        if override_gate && note_text.is_none() {
            return Err(Error::validation("note", "an override needs a note saying why"));
        }
        let decision = Decision {
            id,
            from: vec![ModelState::Candidate],
            to: ModelState::Approved,
            by: principal.actor(),
            note: note_text,
            overridden: override_gate && !version.gate_passed,
            at: now(),
        };
        self.decide(principal, &version, decision, "model.approve", origin).await
    }

    pub async fn reject_model(&self, principal: &Principal, id: Uuid, note_text: Option<String>, origin: &Origin) -> Result<ModelVersion> {
        principal.require_admin()?;
        let version = self.model_version(id).await?;
        let decision = Decision {
            id,
            from: vec![ModelState::Candidate, ModelState::Approved],
            to: ModelState::Rejected,
            by: principal.actor(),
            note: note(note_text)?,
            overridden: false,
            at: now(),
        };
        self.decide(principal, &version, decision, "model.reject", origin).await
    }

    /// Puts an approved version (or one that served before) in service; the serving one retires.
    pub async fn promote_model(&self, principal: &Principal, id: Uuid, note_text: Option<String>, origin: &Origin) -> Result<ModelVersion> {
        principal.require_admin()?;
        let version = self.model_version(id).await?;
        if version.state == ModelState::Retired && version.serving_since.is_none() {
            return Err(Error::Conflict(format!("{} never served; approve a candidate instead", version.label())));
        }
        let decision = Decision {
            id,
            from: vec![ModelState::Approved, ModelState::Retired],
            to: ModelState::Serving,
            by: principal.actor(),
            note: note(note_text)?,
            overridden: false,
            at: now(),
        };
        self.decide(principal, &version, decision, "model.promote", origin).await
    }

    /// Puts the version that served before the current one back in service.
    pub async fn rollback_model(
        &self,
        principal: &Principal,
        name: &str,
        note_text: Option<String>,
        origin: &Origin,
    ) -> Result<ModelVersion> {
        principal.require_admin()?;
        let previous = self
            .store
            .previous_serving_version(name)
            .await?
            .ok_or_else(|| Error::Conflict(format!("{name} has no earlier serving version to roll back to")))?;
        let decision = Decision {
            id: previous.id,
            from: vec![ModelState::Retired],
            to: ModelState::Serving,
            by: principal.actor(),
            note: note(note_text)?,
            overridden: false,
            at: now(),
        };
        self.decide(principal, &previous, decision, "model.rollback", origin).await
    }
}

/// `accuracy 0.701 vs serving 0.705 on 1,234 pairs`, from a version's metrics.
pub fn gate_summary(metrics: &Value) -> String {
    let (mine, serving, pairs) =
        (&metrics["gate"]["pairwise_accuracy"], &metrics["serving"]["pairwise_accuracy"], &metrics["gate"]["pairs"]);
    format!("pairwise accuracy {mine} vs serving {serving} on {pairs} gate pairs")
}
