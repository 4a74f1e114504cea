//! The images a rendering needs, checked before a rollback puts it in
//! place: a generation whose image has since been removed would stop the
//! working container and leave its unit failing to start. Missing images
//! are pulled first unless the container says `pull = "never"`; one that
//! cannot be had refuses the rollback with nothing changed.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{file} needs image {image}, which is not on this host and may not be pulled (Pull=never); nothing was changed"
    )]
    Missing { file: String, image: String },
    #[error("{file} needs image {image}, which is not on this host, and pulling it failed: {message}; nothing was changed")]
    Pull {
        file: String,
        image: String,
        message: String,
    },
}

/// `Image=` and `Pull=` of a rendered `.container` file (values unquoted).
fn image_and_pull(text: &str) -> (Option<String>, Option<String>) {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    (value("Image="), value("Pull="))
}

/// Makes sure every image the `.container` files of `files` name is on
/// this host (as the agent's user sees it), pulling the missing ones
/// unless their `Pull=` is `never`.
pub async fn ensure(files: &BTreeMap<String, String>) -> Result<(), ImageError> {
    for (file, text) in files.iter().filter(|(f, _)| f.ends_with(".container")) {
        let (Some(image), pull) = image_and_pull(text) else {
            continue;
        };
        if podman(&["image", "exists", &image]).await.is_ok() {
            continue;
        }
        if pull.as_deref() == Some("never") {
            return Err(ImageError::Missing {
                file: file.clone(),
                image,
            });
        }
        tracing::info!("{file}: pulling {image} before the rollback");
        if let Err(message) = podman(&["pull", "--quiet", &image]).await {
            return Err(ImageError::Pull {
                file: file.clone(),
                image,
                message,
            });
        }
    }
    Ok(())
}

/// Runs podman; `Err` carries its last stderr line.
async fn podman(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("podman")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("podman failed")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_image_and_pull_from_a_rendered_file() {
        let text = "[Container]\nImage=docker.io/library/redis:7\nPull=\"never\"\n";
        assert_eq!(
            image_and_pull(text),
            (
                Some("docker.io/library/redis:7".into()),
                Some("never".into())
            )
        );
        assert_eq!(image_and_pull("[Unit]\n"), (None, None));
    }
}
