package sim

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// palette is the background colour cycle of the simulated test guest,
// which repaints the whole screen in the next colour on every key-down.
// Neighbours always differ, so every key-down visibly changes the screen.
var palette = []color.RGBA{
	{0x10, 0x10, 0x10, 0xff}, // near black: the boot screen, before any key
	{0x1f, 0x4e, 0x9c, 0xff},
	{0x2e, 0x8b, 0x57, 0xff},
	{0xb2, 0x22, 0x22, 0xff},
	{0xda, 0xa5, 0x20, 0xff},
	{0x6a, 0x1b, 0x9a, 0xff},
	{0x00, 0x80, 0x80, 0xff},
	{0xd2, 0x69, 0x1e, 0xff},
}

// glyphGT is a 7x7 bitmap of '>' for the ">> " prompt the guest prints.
var glyphGT = [7]string{
	"X......",
	".XX....",
	"...XX..",
	".....XX",
	"...XX..",
	".XX....",
	"X......",
}

// surfaceColour returns the background after generation key draws.
func surfaceColour(generation uint64) color.RGBA {
	if generation == 0 {
		return palette[0]
	}
	return palette[1+(generation-1)%uint64(len(palette)-1)]
}

// renderSurface draws the simulated primary surface after generation
// key draws: a full-screen fill, plus the ">> " prompt once a key has
// been pressed.
func renderSurface(w, h int, generation uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	bg := surfaceColour(generation)
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = bg.R, bg.G, bg.B, bg.A
	}
	if generation == 0 {
		return img
	}
	const scale, x0, y0 = 3, 16, 16
	fg := color.RGBA{0xee, 0xee, 0xee, 0xff}
	for g := range 2 {
		for row, bits := range glyphGT {
			for col, b := range bits {
				if b != 'X' {
					continue
				}
				for dy := range scale {
					for dx := range scale {
						x := x0 + g*(len(bits)+2)*scale + col*scale + dx
						y := y0 + row*scale + dy
						if x < w && y < h {
							img.SetRGBA(x, y, fg)
						}
					}
				}
			}
		}
	}
	return img
}

// encodePNG encodes img as a complete PNG file.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode screenshot png: %w", err)
	}
	return buf.Bytes(), nil
}
