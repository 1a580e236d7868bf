//! Mandelbrot escape-time kernel for the `job-mandelbrot` example job.
//!
//! Every pixel is sampled at its centre and iterated with plain `f64`
//! arithmetic (`z = z*z + c`, no fused multiply-add, no transcendental
//! functions), so the output is bit-for-bit identical natively and in WASM.
//! [`run`] is the whole job: parse stdin, render, return the bytes for stdout.

use std::fmt;

/// The largest image (`width * height`) the job accepts.
pub const MAX_PIXELS: u64 = 16 * 1024 * 1024;

/// The largest iteration limit the job accepts.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Characters of the ASCII rendering, from fast escape (left) to slow escape
/// (right); points that never escape are drawn as [`ASCII_INSIDE`].
pub const ASCII_RAMP: &[u8] = b"   .:-=+*#";

/// Character for points that did not escape within the iteration limit.
pub const ASCII_INSIDE: u8 = b'@';

/// Why the job's input or arguments were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// The rectangle of the complex plane to render: real part `x0..x1`,
/// imaginary part `y0..y1`. The top image row is at `y1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Left edge (smallest real part).
    pub x0: f64,
    /// Bottom edge (smallest imaginary part).
    pub y0: f64,
    /// Right edge (largest real part).
    pub x1: f64,
    /// Top edge (largest imaginary part).
    pub y1: f64,
}

/// The classic whole-set view used when stdin gives no rectangle.
pub const DEFAULT_VIEW: View = View {
    x0: -2.0,
    y0: -1.25,
    x1: 0.75,
    y1: 1.25,
};

/// Everything needed to render one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Image width in pixels (columns).
    pub width: u32,
    /// Image height in pixels (rows).
    pub height: u32,
    /// Iteration limit; points still bounded after this many are "inside".
    pub max_iter: u32,
    /// The region of the complex plane to render.
    pub view: View,
}

/// Output format, chosen by the program's first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Binary greyscale PGM (`P5`), the default.
    Pgm,
    /// Text, one line per row (`ascii` argument).
    Ascii,
}

/// Picks the output format from the program arguments after `argv[0]`:
/// none or `pgm` for [`Format::Pgm`], `ascii` for [`Format::Ascii`].
pub fn parse_format<S: AsRef<str>>(args: &[S]) -> Result<Format, InputError> {
    match args {
        [] => Ok(Format::Pgm),
        [one] if one.as_ref() == "pgm" => Ok(Format::Pgm),
        [one] if one.as_ref() == "ascii" => Ok(Format::Ascii),
        _ => Err(InputError(
            "usage: job-mandelbrot [ascii|pgm] < \"WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]\"".into(),
        )),
    }
}

/// Parses the job's stdin: `WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]`, separated by
/// any whitespace. Without the rectangle, [`DEFAULT_VIEW`] is used.
pub fn parse_params(input: &[u8]) -> Result<Params, InputError> {
    let text = std::str::from_utf8(input).map_err(|_| {
        InputError("input is not UTF-8 text; expected WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]".into())
    })?;
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.len() != 3 && tokens.len() != 7 {
        return Err(InputError(format!(
            "expected 3 or 7 values (WIDTH HEIGHT MAX_ITER [X0 Y0 X1 Y1]), got {}",
            tokens.len()
        )));
    }
    let width = parse_positive(tokens[0], "WIDTH")?;
    let height = parse_positive(tokens[1], "HEIGHT")?;
    let max_iter = parse_positive(tokens[2], "MAX_ITER")?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(InputError(format!(
            "image of {width}x{height} = {pixels} pixels is too large (maximum {MAX_PIXELS})"
        )));
    }
    if max_iter > MAX_ITERATIONS {
        return Err(InputError(format!(
            "MAX_ITER = {max_iter} is too large (maximum {MAX_ITERATIONS})"
        )));
    }
    let view = if tokens.len() == 7 {
        let view = View {
            x0: parse_coord(tokens[3], "X0")?,
            y0: parse_coord(tokens[4], "Y0")?,
            x1: parse_coord(tokens[5], "X1")?,
            y1: parse_coord(tokens[6], "Y1")?,
        };
        if view.x0 >= view.x1 || view.y0 >= view.y1 {
            return Err(InputError("the view needs X0 < X1 and Y0 < Y1".into()));
        }
        view
    } else {
        DEFAULT_VIEW
    };
    Ok(Params {
        width,
        height,
        max_iter,
        view,
    })
}

/// Parses a strictly positive integer parameter.
fn parse_positive(token: &str, name: &str) -> Result<u32, InputError> {
    match token.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(InputError(format!(
            "{name} must be an integer from 1 to {}, got {:?}",
            u32::MAX,
            shorten(token)
        ))),
    }
}

/// Parses a finite floating-point coordinate.
fn parse_coord(token: &str, name: &str) -> Result<f64, InputError> {
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(InputError(format!(
            "{name} must be a finite number, got {:?}",
            shorten(token)
        ))),
    }
}

/// Shortens user input quoted in error messages.
fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Iterates `z = z*z + c` from `z = 0` and returns how many iterations ran
/// before `|z| > 2`, or `max_iter` if it never escaped (the point is taken to
/// be in the set).
pub fn escape_time(cr: f64, ci: f64, max_iter: u32) -> u32 {
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    for i in 0..max_iter {
        let (zr2, zi2) = (zr * zr, zi * zi);
        if zr2 + zi2 > 4.0 {
            return i;
        }
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
    }
    max_iter
}

/// Escape time of the pixel at (`col`, `row`), sampled at the pixel's
/// centre; row 0 is the top of the image (imaginary part `y1`).
pub fn pixel_escape_time(params: &Params, col: u32, row: u32) -> u32 {
    let View { x0, y0, x1, y1 } = params.view;
    let dx = (x1 - x0) / f64::from(params.width);
    let dy = (y1 - y0) / f64::from(params.height);
    let cr = x0 + (f64::from(col) + 0.5) * dx;
    let ci = y1 - (f64::from(row) + 0.5) * dy;
    escape_time(cr, ci, params.max_iter)
}

/// Grey level for an escape time: black inside the set, brighter the slower
/// a point escapes (square-root scale, exact integer arithmetic).
pub fn grey_level(iterations: u32, max_iter: u32) -> u8 {
    if iterations >= max_iter {
        return 0;
    }
    let scaled = u64::from(iterations) * 255 * 255 / u64::from(max_iter);
    u8::try_from(scaled.isqrt()).unwrap_or(u8::MAX)
}

/// Character for an escape time: [`ASCII_INSIDE`] inside the set, otherwise a
/// band of [`ASCII_RAMP`] on a logarithmic scale (the bit length of the
/// escape time relative to that of `max_iter`; exact integer arithmetic).
pub fn ascii_char(iterations: u32, max_iter: u32) -> u8 {
    if iterations >= max_iter {
        return ASCII_INSIDE;
    }
    // Logarithmic bands: bit length of the escape time, scaled to the ramp.
    let bit_len = |v: u32| (u32::BITS - v.leading_zeros()) as usize;
    ASCII_RAMP[bit_len(iterations) * ASCII_RAMP.len() / (bit_len(max_iter) + 1)]
}

/// Renders a binary PGM (`P5`, maxval 255) image.
pub fn render_pgm(params: &Params) -> Vec<u8> {
    let mut out = format!("P5\n{} {}\n255\n", params.width, params.height).into_bytes();
    out.reserve((params.width as usize).saturating_mul(params.height as usize));
    for row in 0..params.height {
        for col in 0..params.width {
            let iterations = pixel_escape_time(params, col, row);
            out.push(grey_level(iterations, params.max_iter));
        }
    }
    out
}

/// Renders ASCII art: one line of `width` characters per row, each ending in `\n`.
pub fn render_ascii(params: &Params) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        (params.width as usize)
            .saturating_add(1)
            .saturating_mul(params.height as usize),
    );
    for row in 0..params.height {
        for col in 0..params.width {
            let iterations = pixel_escape_time(params, col, row);
            out.push(ascii_char(iterations, params.max_iter));
        }
        out.push(b'\n');
    }
    out
}

/// Runs the whole job: parses `stdin`, renders in `format` and returns the
/// bytes for stdout.
pub fn run(stdin: &[u8], format: Format) -> Result<Vec<u8>, InputError> {
    let params = parse_params(stdin)?;
    Ok(match format {
        Format::Pgm => render_pgm(&params),
        Format::Ascii => render_ascii(&params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_inside_and_outside() {
        assert_eq!(escape_time(0.0, 0.0, 500), 500);
        assert_eq!(escape_time(-1.0, 0.0, 500), 500); // period-2 bulb
        assert_eq!(escape_time(-0.5, 0.5, 500), 500); // main cardioid
        assert_eq!(escape_time(1.0, 1.0, 500), 2); // z: 0, 1+i, 1+3i
        assert_eq!(escape_time(3.0, 0.0, 500), 1);
        assert_eq!(escape_time(0.5, 0.0, 500), 5);
        let near_cusp = escape_time(0.26, 0.0, 500); // just right of the cusp at 1/4
        assert!(near_cusp > 10 && near_cusp < 500, "{near_cusp}");
    }

    #[test]
    fn parses_params() {
        let p = parse_params(b" 64 24\n200 \n").ok();
        assert_eq!(
            p,
            Some(Params {
                width: 64,
                height: 24,
                max_iter: 200,
                view: DEFAULT_VIEW
            })
        );
        let p = parse_params(b"2 2 10 -1 -1 1 1").ok().map(|p| p.view);
        assert_eq!(
            p,
            Some(View {
                x0: -1.0,
                y0: -1.0,
                x1: 1.0,
                y1: 1.0
            })
        );
    }

    #[test]
    fn rejects_bad_params() {
        for bad in [
            &b""[..],
            b"64 24",
            b"64 24 200 1",
            b"0 24 200",
            b"64 -1 200",
            b"64 24 0",
            b"64 24 x",
            b"4097 4097 10",
            b"64 24 1000001",
            b"4 4 10 1 0 0 1",
            b"4 4 10 0 0 1 NaN",
            b"4 4 10 0 0 inf 1",
            b"\xff",
        ] {
            assert!(
                parse_params(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_params(b"4096 4096 10").is_ok());
    }

    #[test]
    fn formats_from_args() {
        assert_eq!(parse_format::<&str>(&[]), Ok(Format::Pgm));
        assert_eq!(parse_format(&["ascii"]), Ok(Format::Ascii));
        assert_eq!(parse_format(&["pgm"]), Ok(Format::Pgm));
        assert!(parse_format(&["png"]).is_err());
        assert!(parse_format(&["ascii", "x"]).is_err());
    }

    #[test]
    fn pgm_layout() {
        let out = run(b"3 2 50", Format::Pgm).unwrap_or_default();
        assert!(out.starts_with(b"P5\n3 2\n255\n"));
        assert_eq!(out.len(), b"P5\n3 2\n255\n".len() + 6);
    }

    #[test]
    fn ascii_layout() {
        let out = run(b"5 3 50", Format::Ascii).unwrap_or_default();
        assert_eq!(out.len(), 3 * 6);
        assert!(
            out.split(|&b| b == b'\n')
                .take(3)
                .all(|line| line.len() == 5)
        );
        assert_eq!(grey_level(50, 50), 0);
        assert_eq!(ascii_char(50, 50), ASCII_INSIDE);
        assert_eq!(ascii_char(1, 200), b' ');
        assert_eq!(ascii_char(199, 200), b'*');
        assert_eq!(ascii_char(u32::MAX - 1, u32::MAX), b'#');
        let rank = |c: u8| ASCII_RAMP.iter().rposition(|&r| r == c);
        for max in [1, 2, 7, 200, 1_000_000] {
            let ranks: Vec<_> = (0..max.min(5000))
                .map(|i| rank(ascii_char(i, max)))
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "max={max}");
        }
    }

    #[test]
    fn sample_matches_expected_output() {
        let out = run(include_bytes!("../sample/stdin.txt"), Format::Ascii);
        assert_eq!(
            out.as_deref(),
            Ok(&include_bytes!("../sample/stdout.txt")[..])
        );
    }
}
