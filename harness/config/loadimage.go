package config

// loadLoadImage reads LATENCY_LOAD_IMAGE, the image of the busy servers
// an openstack ramp boots (harness/guestload); by default the measured
// console's LATENCY_IMAGE, so it runs after loadCloud.
func loadLoadImage(p *parser, c *Config) {
	c.Cloud.LoadImage = p.str("LATENCY_LOAD_IMAGE", c.Cloud.Image)
}
