//! Reading manifests from files, directories and stdin; parsing is
//! [`cloudgate_translate::manifest`]. A missing file or malformed YAML is an error (non-zero
//! exit); bad objects are warnings.

use std::io::Read;
use std::path::{Path, PathBuf};

use cloudgate_translate::manifest::{self, Loaded};
use cloudgate_translate::World;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Yaml(#[from] manifest::YamlError),
    #[error("{path}: no manifests found")]
    Empty { path: String },
}

/// Expands directories (recursively, `.yaml`/`.yml`/`.json`, sorted) and keeps `-`.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" || p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| LoadError::Io { path: p.display().to_string(), source: e })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let (dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.is_dir());
            out.extend(files.into_iter().filter(|f| {
                matches!(f.extension().and_then(|e| e.to_str()), Some("yaml") | Some("yml") | Some("json"))
            }));
            out.extend(expand(&dirs)?);
        } else {
            return Err(LoadError::Io {
                path: p.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            });
        }
    }
    Ok(out)
}

pub fn load(paths: &[PathBuf], world: &mut World) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in expand(paths)? {
        let label = path.display().to_string();
        let text = read(&path).map_err(|e| LoadError::Io { path: label.clone(), source: e })?;
        manifest::load_str(&label, &text, world, &mut loaded)?;
    }
    if loaded.objects == 0 {
        return Err(LoadError::Empty { path: paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") });
    }
    Ok(loaded)
}

fn read(path: &Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

