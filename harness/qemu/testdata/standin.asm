; A stand-in guest for harness/qemu's tests (the real guest lives in
; harness/guest): a BIOS boot sector that waits for a key with int 16h
; and counts keys in the 16-bit word at physical 0x500. Once it runs,
; the word at 0x502 reads 0x4b4c ("KL"), so a test knows keys it sends
; from then on are counted. It draws nothing.
; Assemble: nasm -f bin -o standin.img standin.asm (guest_test.go checks
; that the result equals the bytes committed in standinCode).
bits 16
org 0x7c00
        sti
        xor ax, ax
        mov ds, ax
        mov word [0x500], 0
        mov word [0x502], 0x4b4c
wait_key:
        mov ah, 0
        int 0x16
        inc word [0x500]
        jmp wait_key
times 510-($-$$) db 0
dw 0xaa55
