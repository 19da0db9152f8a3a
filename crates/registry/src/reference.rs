//! Image references. The grammar lives in the spec crate, so configs (at push), the server
//! (`update --tag`) and this client read references by one implementation; this module
//! re-exports it and turns its errors into [`RegistryError`]s.

pub use cj_spec::reference::{ImageRef, ReferenceError, is_docker_hub};

use crate::RegistryError;

impl From<ReferenceError> for RegistryError {
    fn from(error: ReferenceError) -> Self {
        RegistryError::InvalidReference {
            reference: error.reference,
            reason: error.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_grammar_is_used_and_its_errors_become_registry_errors() {
        let image = ImageRef::parse("127.0.0.1:5000/team/blog:1").unwrap();
        assert_eq!(image.registry_name(), "127.0.0.1:5000");
        assert_eq!(image.api_repository(), "team/blog");
        assert_eq!(
            ImageRef::parse("busybox").unwrap().api_repository(),
            "library/busybox"
        );
        let error = RegistryError::from(ImageRef::parse("Team/blog").unwrap_err());
        assert!(
            matches!(&error, RegistryError::InvalidReference { reference, reason }
                if reference == "Team/blog" && reason.contains("not a repository name")),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("invalid image reference \"Team/blog\": ")
        );
    }
}
