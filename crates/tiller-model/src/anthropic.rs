//! The Anthropic Messages API (`POST {base_url}/messages`, streamed).

use tiller_types::{ProviderKind, StreamEvent};

use crate::{Cancel, Completion, EndpointConfig, ModelError, ModelInfo, Provider, Request};

pub struct Anthropic {
    config: EndpointConfig,
}

impl Anthropic {
    pub fn new(config: EndpointConfig) -> Result<Self, ModelError> {
        Ok(Anthropic { config })
    }
}

impl Provider for Anthropic {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: ProviderKind::Anthropic,
            model: self.config.model.clone(),
            context_length: self.config.context_length,
            endpoint: Some(self.config.base_url.clone()),
        }
    }

    fn complete(
        &mut self,
        _req: &Request,
        _cancel: &Cancel,
        _on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        Err(ModelError::Config(
            "the Anthropic provider is not built yet".into(),
        ))
    }
}
