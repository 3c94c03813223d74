//! Where command output goes: standard output, or a file written atomically (a temp file
//! in the same directory, renamed into place when complete), so a failure never leaves a
//! half-written file under the requested name. A path that names something other than a
//! regular file — `/dev/null`, a FIFO, a terminal — is written in place: renaming over it
//! would replace the device with a file.

use std::{
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// An output destination; call [`Output::finish`] to complete it.
pub struct Output {
    writer: Box<dyn Write + Send>,
    name: String,
    target: Option<(tempfile::NamedTempFile, PathBuf)>,
}

impl Output {
    /// Standard output for `-` (or `None`), else an atomic file at `path`.
    pub fn create(path: Option<&Path>) -> Result<Self> {
        let Some(file) = path.filter(|p| *p != Path::new("-")) else {
            return Ok(Output {
                writer: Box::new(BufWriter::new(io::stdout())),
                name: "standard output".into(),
                target: None,
            });
        };
        let name = file.display().to_string();
        if let Ok(meta) = std::fs::metadata(file)
            && !meta.is_file()
            && !meta.is_dir()
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .with_context(|| format!("cannot write {name}"))?;
            return Ok(Output {
                writer: Box::new(BufWriter::new(f)),
                name,
                target: None,
            });
        }
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let f = tmp
            .reopen()
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        Ok(Output {
            writer: Box::new(BufWriter::new(f)),
            name,
            target: Some((tmp, file.to_path_buf())),
        })
    }

    /// The destination, for messages.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The writer to write to.
    pub fn writer(&mut self) -> &mut (dyn Write + Send) {
        &mut *self.writer
    }

    /// Flushes, and for a file syncs it and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let name = self.name();
        self.writer
            .flush()
            .with_context(|| format!("cannot write {name}"))?;
        drop(self.writer);
        if let Some((tmp, path)) = self.target {
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("cannot write {name}"))?;
            tmp.persist(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
