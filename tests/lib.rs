//! Cross-crate end-to-end and adversarial tests live in tests/.
