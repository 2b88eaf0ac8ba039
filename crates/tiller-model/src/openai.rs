//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`, streamed).

use tiller_types::{ProviderKind, StreamEvent};

use crate::{Cancel, Completion, EndpointConfig, ModelError, ModelInfo, Provider, Request};

pub struct OpenAi {
    config: EndpointConfig,
}

impl OpenAi {
    pub fn new(config: EndpointConfig) -> Result<Self, ModelError> {
        Ok(OpenAi { config })
    }
}

impl Provider for OpenAi {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: ProviderKind::Openai,
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
            "the OpenAI-compatible provider is not built yet".into(),
        ))
    }
}
