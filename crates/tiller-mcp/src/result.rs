//! A tool's result as text for the model: text as it came, resources and links as text,
//! images and audio dropped with a note (the agent trims the whole to its observation size).

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

/// The result's text, and whether the server says the call failed.
pub(crate) fn result_text(result: &CallToolResult) -> (String, bool) {
    let mut parts: Vec<String> = result.content.iter().map(block_text).collect();
    if parts.is_empty()
        && let Some(value) = &result.structured_content
    {
        parts.push(value.to_string());
    }
    let text = if parts.is_empty() { "(no output)".to_string() } else { parts.join("\n") };
    (text, result.is_error.unwrap_or(false))
}

fn block_text(block: &ContentBlock) -> String {
    let dropped = |what: &str, mime: &str| {
        format!("[{what} ({mime}) left out: tiller passes only text to the model]")
    };
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => dropped("an image", &image.mime_type),
        ContentBlock::Audio(audio) => dropped("audio", &audio.mime_type),
        ContentBlock::ResourceLink(link) => {
            let about = link.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            format!("[resource {} <{}>{about}]", link.name, link.uri)
        }
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource <{uri}>]\n{text}")
            }
            ResourceContents::BlobResourceContents { uri, mime_type, .. } => {
                dropped(&format!("binary resource <{uri}>"), mime_type.as_deref().unwrap_or("?"))
            }
            _ => dropped("a resource", "of a kind tiller does not know"),
        },
        _ => dropped("content", "of a kind tiller does not know"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_and_images_become_a_note() {
        let result: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [
                {"type": "text", "text": "hello"},
                {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "file:///a.txt", "name": "a.txt"},
                {"type": "resource", "resource": {"uri": "mem://x", "text": "inside"}}
            ],
            "isError": true
        }))
        .unwrap();
        let (text, failed) = result_text(&result);
        assert!(failed);
        assert_eq!(
            text,
            "hello\n[an image (image/png) left out: tiller passes only text to the model]\n\
             [resource a.txt <file:///a.txt>]\n[resource <mem://x>]\ninside"
        );
    }
}
