module github.com/auditrail/auditrail

go 1.26.8
