//! Manifests, runtime identifiers, qualifiers and function names: parsed or refused with a
//! field named, never a panic.
#![no_main]

use holactl_types::function::{validate_function_name, ConfigPatch};
use holactl_types::version::Qualifier;
use holactl_types::{FunctionManifest, Runtime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = toml::from_str::<FunctionManifest>(text) {
        let patch = ConfigPatch {
            runtime: m.runtime,
            handler: m.handler,
            memory_mb: m.memory_mb,
            timeout_s: m.timeout_s,
            environment: Some(m.environment),
            description: m.description,
            ephemeral_storage_mb: m.ephemeral_storage_mb,
            network: m.network,
            secrets: Some(m.secrets),
            ..Default::default()
        };
        if let Err(e) = patch.into_new_config() {
            assert!(!e.field.is_empty());
        }
    }
    if let Err(e) = Runtime::parse(text) {
        assert_eq!(e.field, "runtime");
    }
    let _ = Qualifier::parse(text);
    let _ = validate_function_name(text);
});
