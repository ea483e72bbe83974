//! `goviral-vision faces MODEL IMAGE.rgb WIDTH HEIGHT`: the faces in a raw RGB picture, one
//! per line (x y width height score), for checking the detector by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, model, image, width, height] = &args[..] else {
        eprintln!("usage: goviral-vision faces MODEL IMAGE.rgb WIDTH HEIGHT");
        return ExitCode::from(2);
    };
    if cmd != "faces" {
        eprintln!("unknown command {cmd}");
        return ExitCode::from(2);
    }
    let run = || -> Result<(), String> {
        let detector = goviral_vision::FaceDetector::load(model.as_ref()).map_err(|e| e.to_string())?;
        let rgb = std::fs::read(image).map_err(|e| format!("{image}: {e}"))?;
        let (w, h) = (width.parse().map_err(|_| "bad width")?, height.parse().map_err(|_| "bad height")?);
        let started = std::time::Instant::now();
        let faces = detector.detect(&rgb, w, h).map_err(|e| e.to_string())?;
        eprintln!("{} faces in {:.3} s", faces.len(), started.elapsed().as_secs_f64());
        for f in faces {
            println!("{:.1} {:.1} {:.1} {:.1} {:.3}", f.x, f.y, f.width, f.height, f.score);
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
