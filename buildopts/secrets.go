package buildopts

import (
	"encoding/csv"
	"strings"
)

func csvFields(s string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.FieldsPerRecord = -1
	return r.Read()
}
