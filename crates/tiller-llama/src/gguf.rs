//! A safe reader for GGUF headers: the metadata a model file carries and the tensor table, checked
//! against the file's length. Everything llama.cpp would assert on (and abort the process for) is
//! caught here first: a file that is not GGUF, one cut short, an unknown version, layer, head,
//! expert and embedding counts out of range or at odds with each other or with the tensor table,
//! a rope that does not fit the heads. Tensor data is never read. Which architectures exist is
//! llama.cpp's to say (it refuses an unknown one with an error, not an abort); refused here are
//! only those it loads but that cannot write a reply.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::LlamaError;

/// Architectures llama.cpp loads that cannot generate a reply token by token: encoders and
/// embedding models, encoder-decoders (which need an encoding pass first), diffusion models and
/// draft models for speculative decoding.
const NOT_GENERATIVE: &str = "\
    clip bert modern-bert nomic-bert nomic-bert-moe neo-bert jina-bert-v2 jina-bert-v3 \
    eurobert t5 t5encoder wavtokenizer-dec gemma-embedding llama-embed dream llada llada-moe \
    rnd1 eagle3 dflash gemma4-assistant";

/// The most layers and experts llama.cpp takes (`LLAMA_MAX_LAYERS`, `LLAMA_MAX_EXPERTS`).
const MAX_LAYERS: u64 = 512;
const MAX_EXPERTS: u64 = 1024;

/// Architectures whose graph asserts that the rope covers the whole key head
/// (`n_embd_head == n_rot` in llama.cpp's src/models/), so that a file saying otherwise would
/// abort at the first decode.
const FULL_ROPE: &str = "\
    apertus arcee arctic baichuan chameleon codeshell cogvlm cohere2moe dbrx deci deepseek \
    dots1 ernie4_5 ernie4_5-moe exaone exaone4 exaone-moe falcon granite granite_swa \
    graniteswitch grok grovemoe hunyuan-moe hunyuan_vl hy_v3 internlm2 jais2 llama llama4 \
    maincoder minimax-01 minimax-m2 mistral3 nemotron olmo olmo2 olmoe orion paddleocr \
    pangu-embedded plamo qwen2 qwen2moe qwen2vl qwen3 qwen3moe qwen3vl qwen3vlmoe seed_oss \
    smallthinker smollm3 starcoder2 talkie xverse";

/// Rope scaling types llama.cpp knows; it aborts on any other.
const ROPE_SCALING: &[&str] = &["none", "linear", "yarn", "longrope"];

/// What a GGUF file says about its model.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufInfo {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// `<arch>.context_length`: the context the model was trained for.
    pub context_length: Option<u64>,
    /// `tokenizer.chat_template`, a Jinja template; base models have none.
    pub chat_template: Option<String>,
    /// `general.file_type`, llama.cpp's numbering of quantisation schemes.
    pub file_type: Option<u32>,
    pub tensor_count: u64,
    /// Weights in all tensors.
    pub parameters: u64,
    /// Bytes the KV cache takes per token of context (F16 keys and values), where the header
    /// says enough to tell.
    pub kv_bytes_per_token: Option<u64>,
}

impl GgufInfo {
    /// The quantisation scheme's usual name (`Q4_K_M`), from `general.file_type`.
    pub fn quantisation(&self) -> String {
        let Some(ft) = self.file_type else {
            return "unknown".into();
        };
        let name = match ft {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            7 => "Q8_0",
            8 => "Q5_0",
            9 => "Q5_1",
            10 => "Q2_K",
            11 => "Q3_K_S",
            12 => "Q3_K_M",
            13 => "Q3_K_L",
            14 => "Q4_K_S",
            15 => "Q4_K_M",
            16 => "Q5_K_S",
            17 => "Q5_K_M",
            18 => "Q6_K",
            19 => "IQ2_XXS",
            20 => "IQ2_XS",
            21 => "Q2_K_S",
            22 => "IQ3_XS",
            23 => "IQ3_XXS",
            24 => "IQ1_S",
            25 => "IQ4_NL",
            26 => "IQ3_S",
            27 => "IQ3_M",
            28 => "IQ2_S",
            29 => "IQ2_M",
            30 => "IQ4_XS",
            31 => "IQ1_M",
            32 => "BF16",
            36 => "TQ1_0",
            37 => "TQ2_0",
            38 => "MXFP4_MOE",
            other => return format!("type {other}"),
        };
        name.into()
    }

    /// Fails for architectures that llama.cpp loads but that cannot write a reply.
    pub fn check_supported(&self, path: &Path) -> Result<(), LlamaError> {
        if !NOT_GENERATIVE.split_whitespace().any(|a| a == self.architecture) {
            return Ok(());
        }
        Err(LlamaError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            arch: self.architecture.clone(),
        })
    }
}

/// Reads and checks the header of the GGUF file at `path`.
pub fn read(path: &Path) -> Result<GgufInfo, LlamaError> {
    let io = |source| LlamaError::Io { path: path.to_path_buf(), source };
    let file = tiller_types::file::open_regular(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    parse(BufReader::new(file), len).map_err(|e| e.at(path))
}

/// A metadata value. Arrays keep only their length: nothing here needs their contents.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array,
}

/// A parse failure before the path is known.
#[derive(Debug, PartialEq)]
enum Fault {
    NotGguf,
    Truncated(String),
    Malformed(String),
    Version(u32),
    Io(String),
}

impl Fault {
    fn at(self, path: &Path) -> LlamaError {
        let path = path.to_path_buf();
        match self {
            Fault::NotGguf => LlamaError::NotGguf { path },
            Fault::Truncated(detail) => LlamaError::Truncated { path, detail },
            Fault::Malformed(detail) | Fault::Io(detail) => LlamaError::Malformed { path, detail },
            Fault::Version(version) => LlamaError::UnsupportedVersion { path, version },
        }
    }
}

/// Reads little-endian fields, refusing any length that runs past the end of the file.
struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Reader<R> {
    fn need(&self, n: u64, what: &str) -> Result<(), Fault> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(Fault::Truncated(format!(
                "{what} at byte {} needs {n} bytes; the file has {}",
                self.pos, self.len
            )));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Fault> {
        self.need(N as u64, what)?;
        let mut buf = [0; N];
        self.inner.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Fault::Truncated(format!("{what} cut short")),
            _ => Fault::Io(e.to_string()),
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, Fault> {
        self.bytes(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, Fault> {
        self.bytes(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), Fault> {
        self.need(n, what)?;
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| Fault::Io(e.to_string()))?;
        if copied < n {
            return Err(Fault::Truncated(format!("{what} cut short")));
        }
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String, Fault> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        let mut buf = Vec::new();
        (&mut self.inner).take(n).read_to_end(&mut buf).map_err(|e| Fault::Io(e.to_string()))?;
        if (buf.len() as u64) < n {
            return Err(Fault::Truncated(format!("{what} cut short")));
        }
        self.pos += n;
        String::from_utf8(buf).map_err(|_| Fault::Malformed(format!("{what} is not UTF-8")))
    }

    /// Reads a value of GGUF type `ty`; arrays are skipped over.
    fn value(&mut self, ty: u32, key: &str) -> Result<Value, Fault> {
        Ok(match ty {
            0 => Value::Uint(self.bytes::<1>(key)?[0].into()),
            1 => Value::Int(i8::from_le_bytes(self.bytes(key)?).into()),
            2 => Value::Uint(u16::from_le_bytes(self.bytes(key)?).into()),
            3 => Value::Int(i16::from_le_bytes(self.bytes(key)?).into()),
            4 => Value::Uint(self.u32(key)?.into()),
            5 => Value::Int(i32::from_le_bytes(self.bytes(key)?).into()),
            6 => Value::Float(f32::from_le_bytes(self.bytes(key)?).into()),
            7 => match self.bytes::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Fault::Malformed(format!("{key}: bool byte {b}"))),
            },
            8 => Value::Str(self.string(key)?),
            9 => {
                let elem = self.u32(key)?;
                let count = self.u64(key)?;
                match elem {
                    9 => return Err(Fault::Malformed(format!("{key}: nested array"))),
                    8 => {
                        for _ in 0..count {
                            let n = self.u64(key)?;
                            self.skip(n, key)?;
                        }
                    }
                    _ => {
                        let size = scalar_size(elem)
                            .ok_or_else(|| Fault::Malformed(format!("{key}: type {elem}")))?;
                        let total = count
                            .checked_mul(size)
                            .ok_or_else(|| Fault::Malformed(format!("{key}: {count} elements")))?;
                        self.skip(total, key)?;
                    }
                }
                Value::Array
            }
            10 => Value::Uint(self.u64(key)?),
            11 => Value::Int(i64::from_le_bytes(self.bytes(key)?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes(key)?)),
            t => return Err(Fault::Malformed(format!("{key}: unknown value type {t}"))),
        })
    }
}

fn scalar_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Elements per block and bytes per block of the ggml tensor types whose size is checked.
/// Other types are accepted without a size check.
fn block_size(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),      // F32
        1 | 30 => (1, 2), // F16, BF16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        _ => return None,
    })
}

fn parse<R: Read>(inner: R, len: u64) -> Result<GgufInfo, Fault> {
    let mut r = Reader { inner, pos: 0, len };
    if len < 4 || r.bytes::<4>("magic")? != *b"GGUF" {
        return Err(Fault::NotGguf);
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(Fault::Version(version));
    }
    let tensor_count = r.u64("tensor count")?;
    let kv_count = r.u64("metadata count")?;

    let mut meta = HashMap::new();
    for _ in 0..kv_count {
        let key = r.string("metadata key")?;
        let ty = r.u32(&key)?;
        let value = r.value(ty, &key)?;
        meta.insert(key, value);
    }
    let text = |key: &str| match meta.get(key) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let uint = |key: &str| match meta.get(key) {
        Some(Value::Uint(n)) => Some(*n),
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    let architecture = text("general.architecture")
        .ok_or_else(|| Fault::Malformed("no general.architecture".into()))?;
    let alignment = uint("general.alignment").unwrap_or(32);
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(Fault::Malformed(format!("alignment {alignment}")));
    }

    // The tensor table, to check that every tensor's data lies inside the file.
    let mut extents = Vec::new();
    let mut shapes = Vec::new();
    let mut parameters = 0u64;
    for _ in 0..tensor_count {
        let name = r.string("tensor name")?;
        let dims = r.u32(&name)?;
        if dims > 4 {
            return Err(Fault::Malformed(format!("tensor {name} has {dims} dimensions")));
        }
        let shape = (0..dims).map(|_| r.u64(&name)).collect::<Result<Vec<u64>, _>>()?;
        let elements = shape.iter().fold(1u64, |n, &d| n.saturating_mul(d));
        parameters = parameters.saturating_add(elements);
        let ty = r.u32(&name)?;
        let offset = r.u64(&name)?;
        if let Some((block, bytes)) = block_size(ty) {
            extents.push((name.clone(), offset.saturating_add(elements / block * bytes)));
        }
        shapes.push((name, shape));
    }
    check_hyperparameters(&architecture, &uint, &meta, &shapes)?;
    let data_start = r.pos.div_ceil(alignment) * alignment;
    for (name, end) in extents {
        if data_start.saturating_add(end) > len {
            return Err(Fault::Truncated(format!(
                "tensor {name} ends at byte {}; the file has {len}",
                data_start.saturating_add(end)
            )));
        }
    }

    Ok(GgufInfo {
        version,
        context_length: uint(&format!("{architecture}.context_length")),
        name: text("general.name"),
        chat_template: text("tokenizer.chat_template"),
        file_type: uint("general.file_type").and_then(|n| u32::try_from(n).ok()),
        kv_bytes_per_token: kv_bytes_per_token(&architecture, &uint),
        architecture,
        tensor_count,
        parameters,
    })
}

/// Layers × KV heads × (key + value width) × 2 bytes; for latent attention (a `kv_lora_rank`),
/// llama.cpp caches the compressed vector and the rope part once per layer instead.
fn kv_bytes_per_token(arch: &str, uint: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    let get = |key: &str| uint(&format!("{arch}.{key}"));
    let layers = get("block_count")?;
    let heads = get("attention.head_count")?;
    let per_head = get("embedding_length")? / heads.max(1);
    let width = match get("attention.kv_lora_rank") {
        Some(rank) => rank + get("rope.dimension_count").unwrap_or(0),
        None => {
            let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
            let k = get("attention.key_length").unwrap_or(per_head);
            let v = get("attention.value_length").unwrap_or(per_head);
            kv_heads * (k + v)
        }
    };
    Some(layers.saturating_mul(width).saturating_mul(2))
}

/// The counts llama.cpp asserts on (and aborts the process for), against each other and the
/// tensor table: layers from 1 to [`MAX_LAYERS`] with tensors `blk.N` for each and none past
/// them; heads and embedding width above zero, dividing as attention needs; the token
/// embedding as wide as the model. Counts given per layer (arrays) are left to llama.cpp.
fn check_hyperparameters(
    arch: &str,
    uint: &dyn Fn(&str) -> Option<u64>,
    meta: &HashMap<String, Value>,
    tensors: &[(String, Vec<u64>)],
) -> Result<(), Fault> {
    let get = |key: &str| uint(&format!("{arch}.{key}"));
    let bad = |detail: String| Err(Fault::Malformed(detail));
    let Some(layers) = get("block_count") else {
        return Ok(());
    };
    if !(1..=MAX_LAYERS).contains(&layers) {
        return bad(format!("{arch}.block_count is {layers}; llama.cpp takes 1 to {MAX_LAYERS}"));
    }
    let embd = get("embedding_length");
    if embd == Some(0) {
        return bad(format!("{arch}.embedding_length is 0"));
    }
    let heads = get("attention.head_count");
    let kv_heads = get("attention.head_count_kv");
    for (key, n) in [("head_count", heads), ("head_count_kv", kv_heads)] {
        if n == Some(0) {
            return bad(format!("{arch}.attention.{key} is 0"));
        }
    }
    let head_width_given = meta.contains_key(&format!("{arch}.attention.key_length"));
    if let (Some(embd), Some(heads), false) = (embd, heads, head_width_given)
        && embd % heads != 0
    {
        return bad(format!(
            "{arch}.embedding_length {embd} is not a multiple of {arch}.attention.head_count {heads}"
        ));
    }
    if let (Some(heads), Some(kv)) = (heads, kv_heads)
        && heads % kv != 0
    {
        return bad(format!(
            "{arch}.attention.head_count {heads} is not a multiple of {arch}.attention.head_count_kv {kv}"
        ));
    }
    check_experts(arch, &get, layers)?;
    if let Some(Value::Str(scaling)) = meta.get(&format!("{arch}.rope.scaling.type"))
        && !ROPE_SCALING.contains(&scaling.as_str())
    {
        return bad(format!(
            "{arch}.rope.scaling.type is '{scaling}'; llama.cpp knows {}",
            ROPE_SCALING.join(", ")
        ));
    }
    let head_width = get("attention.key_length").or(match (embd, heads) {
        (Some(embd), Some(heads)) => Some(embd / heads),
        _ => None,
    });
    if let (Some(rot), Some(width)) = (get("rope.dimension_count"), head_width) {
        let full = FULL_ROPE.split_whitespace().any(|a| a == arch);
        if rot > width || (full && rot != width) {
            return bad(format!(
                "{arch}.rope.dimension_count is {rot}, but the heads are {width} wide"
            ));
        }
    }
    let mut present = vec![false; layers as usize];
    for (name, _) in tensors {
        let layer = name.strip_prefix("blk.").and_then(|rest| rest.split('.').next());
        let Some(n) = layer.and_then(|n| n.parse::<u64>().ok()) else { continue };
        match present.get_mut(n as usize) {
            Some(seen) => *seen = true,
            None => {
                return bad(format!(
                    "tensor {name} is past the {layers} layers of {arch}.block_count"
                ));
            }
        }
    }
    if let Some(missing) = present.iter().position(|seen| !seen) {
        return bad(format!(
            "no tensors for layer {missing} (blk.{missing}.*) of the {layers} in {arch}.block_count"
        ));
    }
    let embedding = tensors.iter().find(|(name, _)| name == "token_embd.weight");
    if let (Some((_, shape)), Some(embd)) = (embedding, embd)
        && shape.first() != Some(&embd)
    {
        return bad(format!(
            "token_embd.weight is {} wide, but {arch}.embedding_length is {embd}",
            shape.first().copied().unwrap_or(0)
        ));
    }
    Ok(())
}

/// The expert counts llama.cpp asserts on: at most [`MAX_EXPERTS`], as many used as there are
/// (some when there are any, none when there are none), groups that divide them, and prediction
/// layers (`nextn`) no more than the layers.
fn check_experts(arch: &str, get: &dyn Fn(&str) -> Option<u64>, layers: u64) -> Result<(), Fault> {
    let bad = |detail: String| Err(Fault::Malformed(format!("{arch}.{detail}")));
    let experts = get("expert_count").unwrap_or(0);
    let used = get("expert_used_count").unwrap_or(0);
    let groups = get("expert_group_count").unwrap_or(0);
    let groups_used = get("expert_group_used_count").unwrap_or(0);
    if let Some(nextn) = get("nextn_predict_layers")
        && nextn > layers
    {
        return bad(format!("nextn_predict_layers is {nextn}, more than the {layers} layers"));
    }
    if experts > MAX_EXPERTS {
        return bad(format!("expert_count is {experts}; llama.cpp takes up to {MAX_EXPERTS}"));
    }
    if used > experts {
        return bad(format!("expert_used_count is {used}, more than expert_count {experts}"));
    }
    if experts > 0 && used == 0 {
        return bad(format!("expert_used_count is 0 with {experts} experts"));
    }
    if experts == 0 && groups > 0 {
        return bad(format!("expert_group_count is {groups} without experts"));
    }
    if experts > 0 && groups >= experts {
        return bad(format!("expert_group_count {groups} is not below expert_count {experts}"));
    }
    if groups > 1 && (!experts.is_multiple_of(groups) || groups_used == 0 || groups_used >= groups)
    {
        return bad(format!(
            "expert_group_count {groups} does not divide expert_count {experts}, or \
             expert_group_used_count {groups_used} is not between 1 and it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds GGUF bytes: a header, metadata and one F32 tensor of `n` elements.
    struct Builder {
        meta: Vec<u8>,
        kvs: u64,
    }

    impl Builder {
        fn new() -> Self {
            Builder { meta: Vec::new(), kvs: 0 }
        }

        fn key(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
            self.meta.extend((key.len() as u64).to_le_bytes());
            self.meta.extend(key.as_bytes());
            self.meta.extend(ty.to_le_bytes());
            self.meta.extend(value);
            self.kvs += 1;
            self
        }

        fn str(self, key: &str, value: &str) -> Self {
            let mut v = (value.len() as u64).to_le_bytes().to_vec();
            v.extend(value.as_bytes());
            self.key(key, 8, &v)
        }

        fn build(self, version: u32, n: u64) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend(version.to_le_bytes());
            out.extend(1u64.to_le_bytes());
            out.extend(self.kvs.to_le_bytes());
            out.extend(self.meta);
            out.extend(4u64.to_le_bytes());
            out.extend(b"w.ok");
            out.extend(1u32.to_le_bytes()); // dims
            out.extend(n.to_le_bytes());
            out.extend(0u32.to_le_bytes()); // F32
            out.extend(0u64.to_le_bytes()); // offset
            out.resize(out.len().div_ceil(32) * 32, 0);
            out.extend(vec![0; n as usize * 4]);
            out
        }
    }

    fn model() -> Builder {
        let mut tokens = 8u32.to_le_bytes().to_vec(); // array of strings
        tokens.extend(2u64.to_le_bytes());
        for t in ["a", "bc"] {
            tokens.extend((t.len() as u64).to_le_bytes());
            tokens.extend(t.as_bytes());
        }
        let mut scores = 6u32.to_le_bytes().to_vec(); // array of f32
        scores.extend(2u64.to_le_bytes());
        scores.extend([0; 8]);
        Builder::new()
            .str("general.architecture", "llama")
            .str("general.name", "Tiny")
            .key("llama.context_length", 4, &256u32.to_le_bytes())
            .key("general.file_type", 4, &15u32.to_le_bytes())
            .key("tokenizer.ggml.add_bos_token", 7, &[1])
            .key("tokenizer.ggml.tokens", 9, &tokens)
            .key("tokenizer.ggml.scores", 9, &scores)
            .str("tokenizer.chat_template", "{{ messages }}")
    }

    fn parse_bytes(bytes: &[u8]) -> Result<GgufInfo, Fault> {
        parse(bytes, bytes.len() as u64)
    }

    #[test]
    fn reads_metadata() {
        let info = parse_bytes(&model().build(3, 16)).unwrap();
        assert_eq!(
            info,
            GgufInfo {
                version: 3,
                architecture: "llama".into(),
                name: Some("Tiny".into()),
                context_length: Some(256),
                chat_template: Some("{{ messages }}".into()),
                file_type: Some(15),
                tensor_count: 1,
                parameters: 16,
                kv_bytes_per_token: None,
            }
        );
        assert_eq!(info.quantisation(), "Q4_K_M");
        assert!(info.check_supported(Path::new("m")).is_ok());
        assert_eq!(parse_bytes(&model().build(2, 16)).unwrap().version, 2);
    }

    #[test]
    fn rejects_what_is_not_gguf() {
        assert_eq!(parse_bytes(b""), Err(Fault::NotGguf));
        assert_eq!(parse_bytes(b"GGU"), Err(Fault::NotGguf));
        assert_eq!(parse_bytes(b"PK\x03\x04 a zip file"), Err(Fault::NotGguf));
        let mut v1 = model().build(3, 4);
        v1[4] = 1;
        assert_eq!(parse_bytes(&v1), Err(Fault::Version(1)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = model().build(3, 16);
        for cut in 4..bytes.len() {
            match parse_bytes(&bytes[..cut]) {
                Err(Fault::Truncated(_)) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn absurd_lengths_are_truncation_not_allocation() {
        let mut bytes = model().build(3, 16);
        // The first key's length, claimed to be 2^62 bytes.
        bytes[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(parse_bytes(&bytes), Err(Fault::Truncated(_))));
    }

    #[test]
    fn malformed_metadata_is_named() {
        let bad_type = Builder::new().key("x", 13, &[]).build(3, 1);
        assert!(matches!(parse_bytes(&bad_type), Err(Fault::Malformed(d)) if d.contains("x")));
        let no_arch = Builder::new().str("general.name", "n").build(3, 1);
        assert!(
            matches!(parse_bytes(&no_arch), Err(Fault::Malformed(d)) if d.contains("architecture"))
        );
    }

    #[test]
    fn only_architectures_that_cannot_reply_are_refused() {
        let arch =
            |name| parse_bytes(&Builder::new().str("general.architecture", name).build(3, 1));
        let err = arch("bert").unwrap().check_supported(Path::new("m.gguf")).unwrap_err();
        assert!(err.to_string().contains("'bert' model"), "{err}");
        for name in ["rwkv7", "qwen2", "mamba", "some-future-arch"] {
            assert!(arch(name).unwrap().check_supported(Path::new("m")).is_ok(), "{name}");
        }
    }

    /// A llama with 4 layers (`w.ok` stands for layer tensors that are not checked here: the
    /// count checks come before the table's).
    fn counts(extra: &[(&str, u32)]) -> Result<GgufInfo, Fault> {
        let mut b = Builder::new().str("general.architecture", "qwen3");
        for (key, value) in extra {
            b = b.key(&format!("qwen3.{key}"), 4, &value.to_le_bytes());
        }
        parse_bytes(&b.build(3, 16))
    }

    #[test]
    fn expert_and_rope_counts_llama_cpp_asserts_on_are_refused() {
        let base = [("block_count", 1), ("embedding_length", 64), ("attention.head_count", 4)];
        let with = |more: &[(&str, u32)]| {
            let all: Vec<(&str, u32)> = base.iter().chain(more).copied().collect();
            counts(&all)
        };
        // The base itself stops at the layer table: `w.ok` is no `blk.0` tensor.
        assert!(
            matches!(with(&[]), Err(Fault::Malformed(d)) if d.contains("no tensors for layer 0"))
        );
        for (more, says) in [
            (&[("expert_count", 2000)][..], "expert_count is 2000"),
            (&[("expert_count", 8), ("expert_used_count", 9)], "more than expert_count"),
            (&[("expert_count", 8)], "expert_used_count is 0"),
            (&[("expert_used_count", 2)], "more than expert_count 0"),
            (
                &[("expert_count", 8), ("expert_used_count", 2), ("expert_group_count", 3)],
                "does not divide",
            ),
            (&[("nextn_predict_layers", 2)], "nextn_predict_layers is 2"),
            (
                &[("rope.dimension_count", 8)],
                "rope.dimension_count is 8, but the heads are 16 wide",
            ),
            (&[("attention.key_length", 8), ("rope.dimension_count", 16)], "heads are 8 wide"),
        ] {
            match with(more) {
                Err(Fault::Malformed(d)) => assert!(d.contains(says), "{more:?}: {d}"),
                other => panic!("{more:?}: {other:?}"),
            }
        }
    }
}
