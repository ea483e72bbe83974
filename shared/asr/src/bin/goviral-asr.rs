//! Set-up and diagnosis of the on-device speech model.
//!   goviral-asr convert <ct2-model-dir> <out-dir>   converts the pinned CTranslate2 weights
//!   goviral-asr transcribe <model-dir> <file.f32>   transcribes raw 16 kHz mono f32le samples

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["convert", src, dest] => {
            goviral_asr::convert::convert(Path::new(src), Path::new(dest)).map(|summary| println!("converted: {summary}"))
        }
        ["transcribe", model, pcm] => transcribe(Path::new(model), Path::new(pcm)),
        _ => {
            eprintln!("usage: goviral-asr convert <ct2-model-dir> <out-dir> | transcribe <model-dir> <samples.f32>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn transcribe(model: &Path, pcm: &Path) -> Result<(), goviral_asr::AsrError> {
    let bytes = std::fs::read(pcm).map_err(|e| goviral_asr::AsrError::Model(format!("{}: {e}", pcm.display())))?;
    let samples: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let started = std::time::Instant::now();
    let transcriber = goviral_asr::Transcriber::load(model)?;
    let loaded = started.elapsed();
    let transcript = transcriber.transcribe(&samples)?;
    for s in &transcript.segments {
        println!("[{:6.2} → {:6.2}] {}", s.start_s, s.end_s, s.text);
    }
    eprintln!("load {:.2} s, transcribe {:.2} s", loaded.as_secs_f64(), (started.elapsed() - loaded).as_secs_f64());
    Ok(())
}
