package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/shakenfist/kerbside-latency/harness/secret"
)

// imageProperties are set on an uploaded guest image: it boots with UEFI
// and needs video RAM for the resolution the loadtest draws at.
var imageProperties = map[string]string{"hw_firmware_type": "uefi", "hw_video_ram": "64"}

// ensureImage finds an active image by name, or streams one from
// cfg.ImageURL into Glance.
func (c *Cloud) ensureImage(ctx context.Context, cfg Config, log *slog.Logger) (string, error) {
	ic, err := c.serviceClient(ctx, "image", 2, "v2/")
	if err != nil {
		return "", err
	}
	pages, err := images.List(ic, images.ListOpts{Name: cfg.Image}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("list images named %q: %w", cfg.Image, err)
	}
	all, err := images.ExtractImages(pages)
	if err != nil {
		return "", fmt.Errorf("read image list: %w", err)
	}
	var best *images.Image
	var others []string
	for i := range all {
		im := &all[i]
		if im.Name != cfg.Image {
			continue
		}
		if im.Status != images.ImageStatusActive {
			others = append(others, fmt.Sprintf("%s (%s)", im.ID, im.Status))
			continue
		}
		if best == nil || im.CreatedAt.After(best.CreatedAt) {
			best = im
		}
	}
	if best != nil {
		log.Info("image found", "image", cfg.Image, "image_id", best.ID, "size_bytes", best.SizeBytes)
		return best.ID, nil
	}
	if len(others) > 0 {
		log.Warn("images with this name exist but none is active", "image", cfg.Image, "images", others)
	}
	if cfg.ImageURL == "" {
		return "", fmt.Errorf("image %q not found in Glance and no image URL is set to upload it from", cfg.Image)
	}
	return c.uploadImage(ctx, ic, cfg, log)
}

// uploadImage streams cfg.ImageURL into a new Glance image without holding
// it in memory, logging progress, and waits for the image to be active.
// An image it created but could not finish is deleted again.
func (c *Cloud) uploadImage(ctx context.Context, ic *gophercloud.ServiceClient, cfg Config, log *slog.Logger) (id string, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ImageTimeout)
	defer cancel()
	src := secret.RedactURL(cfg.ImageURL)

	body, size, err := c.openImage(ctx, cfg.ImageURL)
	if err != nil {
		return "", fmt.Errorf("download image from %s: %w", src, err)
	}
	defer body.Close()
	log.Info("image missing; uploading it", "image", cfg.Image, "source", src, "size_bytes", size)

	im, err := images.Create(ctx, ic, images.CreateOpts{
		Name: cfg.Image, DiskFormat: "qcow2", ContainerFormat: "bare", Properties: imageProperties,
	}).Extract()
	if err != nil {
		return "", fmt.Errorf("create image %q: %w", cfg.Image, err)
	}
	defer func() {
		if err == nil {
			return
		}
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		if derr := images.Delete(dctx, ic, im.ID).ExtractErr(); derr != nil && !gophercloud.ResponseCodeIs(derr, http.StatusNotFound) {
			log.Warn("could not delete the unfinished image", "image_id", im.ID, "error", summarize(derr))
		}
	}()

	pr := &progressReader{r: body, total: size, log: log, imageID: im.ID, start: time.Now()}
	if err := imagedata.Upload(ctx, ic, im.ID, pr).ExtractErr(); err != nil {
		return "", fmt.Errorf("upload image %s (%s) after %d bytes: %w", cfg.Image, im.ID, pr.n.Load(), err)
	}
	sent := pr.n.Load()
	if size >= 0 && sent != size {
		return "", fmt.Errorf("upload image %s (%s): the download ended after %d of %d bytes", cfg.Image, im.ID, sent, size)
	}
	pr.report(true)

	for {
		got, err := images.Get(ctx, ic, im.ID).Extract()
		if err != nil {
			return "", fmt.Errorf("wait for image %s (%s) to be active: %w", cfg.Image, im.ID, err)
		}
		switch got.Status {
		case images.ImageStatusActive:
			// A size that differs means a torn upload (e.g. a 401 retry of a
			// stream that cannot be rewound); no size means Glance did not say.
			if got.SizeBytes > 0 && got.SizeBytes != sent {
				return "", fmt.Errorf("image %s (%s) is active with %d bytes but %d were sent", cfg.Image, im.ID, got.SizeBytes, sent)
			}
			log.Info("image active", "image", cfg.Image, "image_id", im.ID, "size_bytes", got.SizeBytes)
			return im.ID, nil
		case images.ImageStatusKilled, images.ImageStatusDeleted, images.ImageStatusPendingDelete, images.ImageStatusDeactivated:
			return "", fmt.Errorf("image %s (%s) went to %s after upload", cfg.Image, im.ID, got.Status)
		}
		if !sleep(ctx, c.poll) {
			return "", fmt.Errorf("wait for image %s (%s) to be active (last status %s): %w", cfg.Image, im.ID, got.Status, ctx.Err())
		}
	}
}

// openImage opens the image at rawURL for reading: an http(s) URL is
// fetched, a file:// URL (an air-gapped cloud's local copy) is opened.
// size is -1 when the server does not say.
func (c *Cloud) openImage(ctx context.Context, rawURL string) (body io.ReadCloser, size int64, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, secret.StripURLError(err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, 0, fmt.Errorf("file URL with host %q: want file:///absolute/path (the file must be on this machine)", u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, 0, errors.New("file URL without an absolute path: want file:///absolute/path")
		}
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s is not a regular file", u.Path)
		}
		return f, st.Size(), nil
	case "http", "https":
	default:
		return nil, 0, fmt.Errorf("unsupported URL scheme %q: want https://, http:// or file:///", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, secret.StripURLError(err)
	}
	resp, err := c.download.Do(req)
	if err != nil {
		return nil, 0, secret.StripURLError(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.Body, resp.ContentLength, nil
}

// progressReader counts bytes on their way to Glance and logs progress at
// most every progressLogEvery, from inside Read (no goroutine). The HTTP
// transport may still be reading after the upload call returned (when
// Glance answered early), so its state is safe for concurrent use.
type progressReader struct {
	r       io.Reader
	n       atomic.Int64
	total   int64 // -1 when unknown
	log     *slog.Logger
	imageID string
	start   time.Time

	mu   sync.Mutex
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	p.mu.Lock()
	due := time.Since(p.last) >= progressLogEvery && time.Since(p.start) >= progressLogEvery
	p.mu.Unlock()
	if due {
		p.report(false)
	}
	return n, err
}

func (p *progressReader) report(done bool) {
	p.mu.Lock()
	p.last = time.Now()
	p.mu.Unlock()
	n := p.n.Load()
	attrs := []any{"image_id", p.imageID, "bytes", n, "elapsed", time.Since(p.start).Round(time.Millisecond)}
	if p.total > 0 {
		attrs = append(attrs, "total_bytes", p.total, "percent", fmt.Sprintf("%.1f", 100*float64(n)/float64(p.total)))
	}
	msg := "image upload progress"
	if done {
		msg = "image upload complete"
	}
	p.log.Info(msg, attrs...)
}
