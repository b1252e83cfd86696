package sim

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTruthRowsInPressOrder: a press that draws nothing is written at its
// would-be landing, which can come before the first draw of the press
// before it (pushed back behind a stalled tail); rows still come out in
// press order.
func TestTruthRowsInPressOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "truth.csv")
	tw, err := newTruthWriter(path)
	require.NoError(t, err)
	r1 := TruthRow{Press: 1, ArrivalUS: 100, FirstDrawUS: 120, LastDrawUS: 170, Draws: 23}
	r2 := TruthRow{Press: 2, ArrivalUS: 110}
	r4 := TruthRow{Press: 4, ArrivalUS: 300, FirstDrawUS: 330, LastDrawUS: 333, Draws: 2}
	require.NoError(t, tw.add(r2))
	rows, err := ReadTruthFile(path)
	require.NoError(t, err)
	assert.Empty(t, rows, "press 2 waits for press 1")
	require.NoError(t, tw.add(r1))
	require.NoError(t, tw.add(r4)) // press 3's first draw never came
	require.NoError(t, tw.close())
	rows, err = ReadTruthFile(path)
	require.NoError(t, err)
	assert.Equal(t, []TruthRow{r1, r2, r4}, rows)
}

func TestReadTruth(t *testing.T) {
	head := strings.Join(TruthHeader, ",") + "\n"
	rows, err := ReadTruth(strings.NewReader(head + "1,1000000,1017655,1020655,0.017655,0.020655,23\n2,2000000,,,,,0\n"))
	require.NoError(t, err)
	assert.Equal(t, []TruthRow{
		{Press: 1, ArrivalUS: 1000000, FirstDrawUS: 1017655, LastDrawUS: 1020655, Draws: 23},
		{Press: 2, ArrivalUS: 2000000},
	}, rows)
	assert.Equal(t, "0.017655", rows[0].record()[4], "seconds written exactly")
	for _, bad := range []string{
		"",
		"0.030000\n",
		head + "0,1,2,3,,,1\n",
		head + "1,10,5,20,,,1\n",
		head + "1,10,20,15,,,1\n",
		head + "1,10,,,,,3\n",
		head + "1,10,12,13,,,0\n",
		head + "1,10,12\n",
	} {
		_, err := ReadTruth(strings.NewReader(bad))
		assert.Error(t, err, "%q", bad)
	}
}
