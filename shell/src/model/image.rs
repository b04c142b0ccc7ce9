//! An artifact's picture, decoded off the main loop: by gdk-pixbuf's loader for its content
//! type alone (no sniffing for another loader), and refused before its pixels are allocated
//! when it claims more than [`MAX_SIDE`] pixels a side (a few bytes of PNG can claim
//! gigabytes). What comes out are pixels GTK shows as they are, without decoding again.

use gtk::gdk_pixbuf;
use gtk::gdk_pixbuf::prelude::*;
use gtk::glib;

/// The most pixels a side of a picture shown.
pub const MAX_SIDE: i32 = 4096;

/// Bytes handed to the loader at a time: a picture too large is refused after its header.
const CHUNK: usize = 64 * 1024;

/// A decoded picture: 8-bit RGB or RGBA (not premultiplied), rows `stride` bytes apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: i32,
    pub height: i32,
    pub stride: usize,
    pub alpha: bool,
    pub pixels: glib::Bytes,
}

/// Whether a picture of `width` x `height` is shown.
pub fn fits(width: i32, height: i32) -> bool {
    (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height)
}

/// Decode `bytes` as a picture of content type `mime` (one of
/// [`super::artifacts::IMAGE_TYPES`]), or say why it is not shown. Blocks: call it off the main
/// loop.
pub fn decode(mime: &str, bytes: &[u8]) -> Result<Decoded, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("not an image this panel can read ({e})");
    let loader = gdk_pixbuf::PixbufLoader::with_mime_type(mime).map_err(|e| unreadable(&e))?;
    let claimed = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen = claimed.clone();
    loader.connect_size_prepared(move |loader, width, height| {
        if !fits(width, height) {
            seen.set(Some((width, height)));
            // A size of 0 makes the loader stop before it allocates the picture.
            loader.set_size(0, 0);
        }
    });
    let too_large = |(w, h): (i32, i32)| {
        format!("too large to show ({w} x {h} pixels; at most {MAX_SIDE} a side)")
    };
    for chunk in bytes.chunks(CHUNK) {
        let written = loader.write(chunk);
        if let Some(size) = claimed.get() {
            let _ = loader.close();
            return Err(too_large(size));
        }
        if let Err(e) = written {
            let _ = loader.close();
            return Err(unreadable(&e));
        }
    }
    let closed = loader.close();
    if let Some(size) = claimed.get() {
        return Err(too_large(size));
    }
    closed.map_err(|e| unreadable(&e))?;
    let pixbuf = loader
        .pixbuf()
        .ok_or_else(|| unreadable(&"no picture in it"))?;
    let (width, height) = (pixbuf.width(), pixbuf.height());
    if !fits(width, height) {
        return Err(too_large((width, height)));
    }
    if pixbuf.bits_per_sample() != 8
        || pixbuf.n_channels() != if pixbuf.has_alpha() { 4 } else { 3 }
    {
        return Err(unreadable(&"an unusual pixel format"));
    }
    Ok(Decoded {
        width,
        height,
        stride: usize::try_from(pixbuf.rowstride()).map_err(|e| unreadable(&e))?,
        alpha: pixbuf.has_alpha(),
        pixels: pixbuf.read_pixel_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of `w` x `h` red pixels, written by gdk-pixbuf.
    fn png(w: i32, h: i32) -> Vec<u8> {
        let p = gdk_pixbuf::Pixbuf::new(gdk_pixbuf::Colorspace::Rgb, true, 8, w, h).unwrap();
        p.fill(0xff0000ff);
        p.save_to_bufferv("png", &[]).unwrap()
    }

    /// The CRC-32 of PNG chunks.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// `png` with its header claiming `w` x `h` (its CRC made right again).
    fn claiming(png: &[u8], w: u32, h: u32) -> Vec<u8> {
        let mut out = png.to_vec();
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
        out[16..20].copy_from_slice(&w.to_be_bytes());
        out[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&out[12..29]);
        out[29..33].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn a_small_picture_is_decoded() {
        let d = decode("image/png", &png(40, 20)).unwrap();
        assert_eq!((d.width, d.height, d.alpha), (40, 20, true));
        assert!(d.stride >= 160);
        assert!(d.pixels.len() >= d.stride * 19 + 160);
        assert_eq!(&d.pixels[..4], &[0xff, 0, 0, 0xff]);
    }

    #[test]
    fn a_picture_claiming_too_many_pixels_is_refused() {
        let big = claiming(&png(2, 2), 50_000, 50_000);
        assert_eq!(
            decode("image/png", &big),
            Err("too large to show (50000 x 50000 pixels; at most 4096 a side)".to_string())
        );
        let wide = claiming(&png(2, 2), 4097, 1);
        assert!(decode("image/png", &wide)
            .unwrap_err()
            .starts_with("too large"));
        assert!(fits(4096, 4096) && !fits(0, 1) && !fits(1, 4097));
    }

    #[test]
    fn only_the_loader_of_its_type_reads_it() {
        // SVG bytes named PNG: the PNG loader refuses them, no other loader is tried.
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>";
        let e = decode("image/png", svg).unwrap_err();
        assert!(e.starts_with("not an image this panel can read"), "{e}");
        assert!(decode("image/png", b"").is_err());
        assert!(decode("image/x-no-such-type", &png(2, 2)).is_err());
    }
}
