//go:build amd64 && !purego

#include "textflag.h"

// BYTES16 declares name: 16 bytes, the 8 of v twice.
#define BYTES16(name, v) \
	DATA name<>+0x00(SB)/8, v \
	DATA name<>+0x08(SB)/8, v \
	GLOBL name<>(SB), RODATA|NOPTR, $16

BYTES16(quoteBytes, $0x2222222222222222)
BYTES16(backslashBytes, $0x5c5c5c5c5c5c5c5c)
BYTES16(openBytes, $0x7b7b7b7b7b7b7b7b)
BYTES16(closeBytes, $0x7d7d7d7d7d7d7d7d)
BYTES16(caseBytes, $0x2020202020202020)

// CHUNK compares the 16 bytes at off(SI) and ORs their masks, shifted left
// by shift, into R8 (quotes), R9 (backslashes), R10 (opening brackets) and
// R11 (closing brackets), and the bytes' high bits into R12. '[' and ']'
// are '{' and '}' without 0x20. X6 collects the bytes equal to NUL.
#define CHUNK(off, shift) \
	MOVOU off(SI), X0 \
	MOVOU X0, X4 \
	PCMPEQB X13, X4 \
	POR X4, X6 \
	PMOVMSKB X0, DI \
	SHLQ $shift, DI \
	ORQ DI, R12 \
	MOVOU X0, X1 \
	PCMPEQB X8, X1 \
	PMOVMSKB X1, AX \
	MOVOU X0, X2 \
	PCMPEQB X9, X2 \
	PMOVMSKB X2, BX \
	POR X12, X0 \
	MOVOU X0, X3 \
	PCMPEQB X10, X3 \
	PMOVMSKB X3, CX \
	PCMPEQB X11, X0 \
	PMOVMSKB X0, DX \
	SHLQ $shift, AX \
	SHLQ $shift, BX \
	SHLQ $shift, CX \
	SHLQ $shift, DX \
	ORQ AX, R8 \
	ORQ BX, R9 \
	ORQ CX, R10 \
	ORQ DX, R11

// func masks64(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64)
TEXT ·masks64(SB), NOSPLIT, $0-56
	MOVQ b+0(FP), SI
	MOVOU quoteBytes<>(SB), X8
	MOVOU backslashBytes<>(SB), X9
	MOVOU openBytes<>(SB), X10
	MOVOU closeBytes<>(SB), X11
	MOVOU caseBytes<>(SB), X12
	XORQ R8, R8
	XORQ R9, R9
	XORQ R10, R10
	XORQ R11, R11
	XORQ R12, R12
	PXOR X13, X13
	PXOR X6, X6
	CHUNK(0, 0)
	CHUNK(16, 16)
	CHUNK(32, 32)
	CHUNK(48, 48)
	MOVQ R8, quotes+8(FP)
	MOVQ R9, backslashes+16(FP)
	MOVQ R10, opens+24(FP)
	MOVQ R11, closes+32(FP)
	MOVQ R12, high+40(FP)
	PMOVMSKB X6, AX
	MOVQ AX, nul+48(FP)
	RET

// MASK32 sets reg to the mask of the bytes of Y0 (bits 0-31) and Y1 (bits
// 32-63) equal to those of the vector cmp, using Y2 and Y3.
#define MASK32(cmp, reg) \
	VPCMPEQB cmp, Y0, Y2 \
	VPCMPEQB cmp, Y1, Y3 \
	VPMOVMSKB Y2, reg \
	VPMOVMSKB Y3, DX \
	SHLQ $32, DX \
	ORQ DX, reg

// func masks64AVX2(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64)
TEXT ·masks64AVX2(SB), NOSPLIT, $0-56
	MOVQ b+0(FP), SI
	VPBROADCASTB quoteBytes<>(SB), Y8
	VPBROADCASTB backslashBytes<>(SB), Y9
	VPBROADCASTB openBytes<>(SB), Y10
	VPBROADCASTB closeBytes<>(SB), Y11
	VPBROADCASTB caseBytes<>(SB), Y12
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y1
	MASK32(Y8, R8)
	MASK32(Y9, R9)
	VPMOVMSKB Y0, AX
	VPMOVMSKB Y1, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, high+40(FP)
	// A NUL: the lesser byte of the two halves is 0.
	VPMINUB Y0, Y1, Y4
	VPXOR Y5, Y5, Y5
	VPCMPEQB Y5, Y4, Y4
	VPMOVMSKB Y4, AX
	MOVQ AX, nul+48(FP)
	VPOR Y12, Y0, Y0
	VPOR Y12, Y1, Y1
	MASK32(Y10, R10)
	MASK32(Y11, R11)
	VZEROUPPER
	MOVQ R8, quotes+8(FP)
	MOVQ R9, backslashes+16(FP)
	MOVQ R10, opens+24(FP)
	MOVQ R11, closes+32(FP)
	RET
